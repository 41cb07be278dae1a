namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// Which files the model families mutate. <c>ldm fuzz</c> and the test suite mutate all of them; a narrower scope
/// lets a reproduction or an investigation leave a file kind out.
/// </summary>
public sealed record FuzzScope
{
    /// <summary>Everything.</summary>
    public static FuzzScope All { get; } = new();

    /// <summary>Mutate unet/, vae/ and text_encoder/config.json (off: the config family mutates model_index.json only).</summary>
    public bool ComponentConfigs { get; init; } = true;

    /// <summary>Mutate tokenizer_config.json and special_tokens_map.json (off: the tokenizer family mutates vocab.json and merges.txt only).</summary>
    public bool TokenizerConfigs { get; init; } = true;
}
