namespace LatentDiffusion.Cli.Generation;

/// <summary>
/// Where the embedded model lives: models/fashion-colours of the repository the tool was built
/// from (found by walking up from the executable), or LDM_MODEL.
/// </summary>
internal static class DefaultModel
{
    public const string RelativePath = "models/fashion-colours";

    public static string Resolve(string? given)
    {
        if (!string.IsNullOrEmpty(given)) return given;
        var fromEnvironment = Environment.GetEnvironmentVariable("LDM_MODEL");
        if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, RelativePath);
                if (File.Exists(Path.Combine(candidate, "model_index.json"))) return candidate;
            }
        }
        throw new FileNotFoundException($"no --model given and the embedded model ({RelativePath}) was not found above {AppContext.BaseDirectory}; pass --model DIR|FILE or set LDM_MODEL");
    }
}
