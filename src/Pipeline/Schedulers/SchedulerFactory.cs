using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// Creates schedulers from configs, scheduler_config.json files, and the sampler names users know
/// from AUTOMATIC1111 ("euler_a", "dpmpp_2m_karras", "DPM++ 2M Karras", …).
/// </summary>
public static class SchedulerFactory
{
    private sealed record Sampler(string ClassName, string DisplayName, IReadOnlyDictionary<string, JsonNode?> Overrides);

    private static Sampler Make(string className, string display, params (string Key, JsonNode? Value)[] overrides) =>
        new(className, display, overrides.ToDictionary(o => o.Key, o => o.Value));

    // A1111's sampler names → diffusers class + config overrides (as diffusers' docs map them).
    private static readonly Dictionary<string, Sampler> Samplers = new(StringComparer.Ordinal)
    {
        ["ddpm"] = Make("DDPMScheduler", "DDPM"),
        ["ddim"] = Make("DDIMScheduler", "DDIM"),
        ["pndm"] = Make("PNDMScheduler", "PLMS", ("skip_prk_steps", true)), // PLMS: no Runge–Kutta warm-up
        ["euler"] = Make("EulerDiscreteScheduler", "Euler", ("use_karras_sigmas", false)),
        ["euler_karras"] = Make("EulerDiscreteScheduler", "Euler Karras", ("use_karras_sigmas", true)),
        ["euler_a"] = Make("EulerAncestralDiscreteScheduler", "Euler a"),
        ["dpmpp_2m"] = Make("DPMSolverMultistepScheduler", "DPM++ 2M",
            ("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", false)),
        ["dpmpp_2m_karras"] = Make("DPMSolverMultistepScheduler", "DPM++ 2M Karras",
            ("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", true)),
        ["lms"] = Make("LMSDiscreteScheduler", "LMS", ("use_karras_sigmas", false)),
        ["lms_karras"] = Make("LMSDiscreteScheduler", "LMS Karras", ("use_karras_sigmas", true)),
        ["lcm"] = Make("LCMScheduler", "LCM"),
    };

    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["plms"] = "pndm",
        ["euler_ancestral"] = "euler_a",
        ["k_euler"] = "euler",
        ["k_euler_a"] = "euler_a",
        ["k_euler_ancestral"] = "euler_a",
        ["k_lms"] = "lms",
        ["dpm++_2m"] = "dpmpp_2m",
        ["dpm++_2m_karras"] = "dpmpp_2m_karras",
    };

    /// <summary>The canonical sampler names, e.g. "euler_a".</summary>
    public static IReadOnlyCollection<string> SamplerNames => Samplers.Keys;

    /// <summary>The scheduler a config describes.</summary>
    public static IScheduler Create(SchedulerConfig config) => config switch
    {
        DDPMSchedulerConfig c => new DDPMScheduler(c),
        DDIMSchedulerConfig c => new DDIMScheduler(c),
        PNDMSchedulerConfig c => new PNDMScheduler(c),
        EulerDiscreteSchedulerConfig c => new EulerDiscreteScheduler(c),
        EulerAncestralDiscreteSchedulerConfig c => new EulerAncestralDiscreteScheduler(c),
        DPMSolverMultistepSchedulerConfig c => new DPMSolverMultistepScheduler(c),
        LMSDiscreteSchedulerConfig c => new LMSDiscreteScheduler(c),
        LCMSchedulerConfig c => new LCMScheduler(c),
        _ => throw new SchedulerConfigException("_class_name", $"no scheduler for config type {config.GetType().Name}"),
    };

    /// <summary>The scheduler a scheduler_config.json describes.</summary>
    public static IScheduler Load(string path) => Create(SchedulerConfig.Load(path));

    /// <summary>
    /// The sampler <paramref name="name"/> configured from <paramref name="baseConfig"/> (usually the
    /// model's scheduler_config.json: its betas, prediction type, steps offset, … carry over as
    /// diffusers' from_config carries them; null = the class defaults).
    /// </summary>
    public static IScheduler Create(string name, SchedulerConfig? baseConfig = null) => Create(ConfigFor(name, baseConfig));

    /// <summary>The config that <see cref="Create(string, SchedulerConfig?)"/> uses.</summary>
    public static SchedulerConfig ConfigFor(string name, SchedulerConfig? baseConfig = null)
    {
        var sampler = Lookup(name);
        baseConfig ??= SchedulerConfig.Default(sampler.ClassName);
        return baseConfig.ConvertTo(sampler.ClassName, sampler.Overrides);
    }

    /// <summary>The name AUTOMATIC1111 shows (and writes into PNG parameters), e.g. "DPM++ 2M Karras".</summary>
    public static string DisplayName(string name) => Lookup(name).DisplayName;

    /// <summary>
    /// The canonical name of a sampler as users write it: case, spaces and hyphens do not matter,
    /// "++" may be "pp" ("DPM++ 2M Karras" → "dpmpp_2m_karras").
    /// </summary>
    public static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = string.Join('_', name.Trim().ToLowerInvariant().Split([' ', '-', '_'], StringSplitOptions.RemoveEmptyEntries));
        if (Aliases.TryGetValue(key, out var alias)) return alias;
        key = key.Replace("++", "pp", StringComparison.Ordinal);
        if (Aliases.TryGetValue(key, out alias)) return alias;
        return Samplers.ContainsKey(key) ? key
            : throw new ArgumentException($"unknown sampler '{name}' (known: {string.Join(", ", Samplers.Keys)})", nameof(name));
    }

    private static Sampler Lookup(string name) => Samplers[Normalize(name)];
}
