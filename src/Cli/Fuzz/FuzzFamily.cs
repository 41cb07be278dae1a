namespace LatentDiffusion.Cli.Fuzz;

/// <summary>What a fuzz case mutates.</summary>
public enum FuzzFamily
{
    /// <summary>safetensors headers and data, read directly and as a model's weights.</summary>
    SafeTensors,
    /// <summary>unet / vae / text_encoder config.json and model_index.json.</summary>
    Config,
    /// <summary>scheduler/scheduler_config.json.</summary>
    Scheduler,
    /// <summary>tokenizer/vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.</summary>
    Tokenizer,
    /// <summary>PNG, JPEG, WebP, GIF and BMP bytes.</summary>
    Image,
    /// <summary>Option values of <c>ldm generate</c>, <c>img2img</c> and <c>sample</c>.</summary>
    Options,
}

/// <summary>How one case ended.</summary>
public enum FuzzOutcome
{
    /// <summary>A correct result (a finite image of the right size, tensors that load).</summary>
    Ok,
    /// <summary>One clear error that names the file, field or option.</summary>
    Refused,
    /// <summary>Anything else: an internal error, a vague message, a non-finite image, a leftover file.</summary>
    Bug,
}

/// <summary>One case: how to reproduce it (family, seed, index), what was mutated, and what happened.</summary>
public sealed record FuzzCaseResult(FuzzFamily Family, ulong Seed, int Index, string Mutation, FuzzOutcome Outcome, string Message)
{
    public string Reproduction => $"ldm fuzz --family {FuzzFamilies.Name(Family)} --seed {Seed} --case {Index}";
}

public static class FuzzFamilies
{
    public static IReadOnlyList<FuzzFamily> All { get; } = Enum.GetValues<FuzzFamily>();

    /// <summary>The command-line name: safetensors, config, scheduler, tokenizer, image, options.</summary>
    public static string Name(FuzzFamily family) => family.ToString().ToLowerInvariant();

    public static FuzzFamily Parse(string name) =>
        All.FirstOrDefault(f => Name(f) == name.ToLowerInvariant(), (FuzzFamily)(-1)) is var f && Enum.IsDefined(f)
            ? f
            : throw new ArgumentException($"--family must be one of {string.Join(", ", All.Select(Name))} or all, got '{name}'");
}
