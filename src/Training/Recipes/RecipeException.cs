namespace LatentDiffusion.Training.Recipes;

/// <summary>A recipe cannot be used: unreadable, an unknown field, a wrong type or an impossible value; the message names the file and the field.</summary>
public sealed class RecipeException(string message, Exception? inner = null) : Exception(message, inner);
