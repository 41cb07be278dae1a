namespace LatentDiffusion.Torch.Config;

/// <summary>
/// A model's config.json as a record (<c>UNet2DConditionModelConfig</c>, <c>AutoencoderKLConfig</c>,
/// <c>CLIPTextConfig</c>, …): what <see cref="ModelConfig"/> needs to read any of them the same way.
/// </summary>
public interface IModelConfig<TSelf> where TSelf : IModelConfig<TSelf>
{
    /// <summary>diffusers' <c>_class_name</c>; a file that records another is refused. Null: not checked (transformers configs).</summary>
    static abstract string? ConfigClassName { get; }

    /// <summary>Keys the file may carry that the record does not model (transformers' generic PretrainedConfig keys).</summary>
    static virtual IEnumerable<string>? IgnoredKeys => null;

    /// <summary>Throws a <see cref="ConfigException"/> (or <see cref="ArgumentException"/>) naming the first field this implementation cannot build.</summary>
    void Validate(string source);
}

/// <summary>Reads every model's config.json through one path: class name, unknown fields, validation, errors naming the file.</summary>
public static class ModelConfig
{
    /// <summary>The config in <paramref name="path"/>, validated; any error names the file and the field.</summary>
    public static T Load<T>(string path) where T : IModelConfig<T>
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: not found (expected a {typeof(T).Name} config.json)", path);
        return Parse<T>(ConfigJson.ReadText(path), path);
    }

    /// <summary>A config from JSON text; <paramref name="source"/> names it in errors (a path, or an embedded config's name).</summary>
    public static T Parse<T>(string json, string source) where T : IModelConfig<T>
    {
        if (T.ConfigClassName is { } expected && ConfigJson.ClassNameOf(json, source) is { } recorded && recorded != expected)
            throw new ConfigException($"{source}: field '_class_name' is \"{recorded}\", expected \"{expected}\"");
        var config = ConfigJson.Parse<T>(json, source, T.IgnoredKeys);
        try
        {
            config.Validate(source);
        }
        catch (Exception e) when (e is ConfigException or ArgumentException)
        {
            if (e.Message.StartsWith(source, StringComparison.Ordinal)) throw;
            throw new ConfigException($"{source}: {e.Message}", e);
        }
        return config;
    }
}
