namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// Creates schedulers from configs, scheduler_config.json files, and the sampler names users know
/// from AUTOMATIC1111 ("euler_a", "dpmpp_2m_karras", "DPM++ 2M Karras", …). Everything it knows comes
/// from the registry, <see cref="Samplers"/>.
/// </summary>
public static class SchedulerFactory
{
    /// <summary>The canonical sampler names, e.g. "euler_a".</summary>
    public static IReadOnlyCollection<string> SamplerNames => Samplers.Names;

    /// <summary>The scheduler a config describes.</summary>
    public static IScheduler Create(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Samplers.Class(config.ClassName).Create(config);
    }

    /// <summary>The scheduler a scheduler_config.json describes.</summary>
    public static IScheduler Load(string path) => Create(SchedulerConfig.Load(path));

    /// <summary>
    /// The sampler <paramref name="name"/> configured from <paramref name="baseConfig"/> (usually the
    /// model's scheduler_config.json: its betas, prediction type, steps offset, … carry over as
    /// diffusers' from_config carries them; null = the class defaults).
    /// </summary>
    public static IScheduler Create(string name, SchedulerConfig? baseConfig = null) => Samplers.Get(name).Create(baseConfig);

    /// <summary>The config that <see cref="Create(string, SchedulerConfig?)"/> uses.</summary>
    public static SchedulerConfig ConfigFor(string name, SchedulerConfig? baseConfig = null) => Samplers.Get(name).ConfigFrom(baseConfig);

    /// <summary>
    /// The canonical name of a sampler as users write it: case, spaces and hyphens do not matter,
    /// "++" may be "pp" ("DPM++ 2M Karras" → "dpmpp_2m_karras").
    /// </summary>
    public static string Normalize(string name) => Samplers.Get(name).Name;
}
