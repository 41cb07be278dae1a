using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// A sampler as users know it, declared once in <see cref="Samplers.All"/>: the name the command line
/// takes, the names AUTOMATIC1111 writes, and the diffusers scheduler class with the config options
/// that make it this sampler.
/// </summary>
public sealed record SamplerInfo
{
    /// <summary>The command-line name, e.g. "dpmpp_2m_karras".</summary>
    public required string Name { get; init; }

    /// <summary>AUTOMATIC1111's sampler name (≥ 1.9, without the schedule), e.g. "DPM++ 2M".</summary>
    public required string DisplayName { get; init; }

    /// <summary>AUTOMATIC1111's "Schedule type" (≥ 1.9), e.g. "Karras"; see <see cref="Samplers"/> for the choice.</summary>
    public required string ScheduleType { get; init; }

    /// <summary>The diffusers scheduler class.</summary>
    public required SchedulerClass Class { get; init; }

    /// <summary>Config options (config names → JSON values) set on top of the model's scheduler config.</summary>
    public IReadOnlyDictionary<string, JsonNode?> Overrides { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Other names users write (old AUTOMATIC1111 names such as "k_euler_a", diffusers-style spellings).</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];

    /// <summary>
    /// Whether AUTOMATIC1111 ≥ 1.9 means this sampler by "Schedule type: Automatic" with its
    /// <see cref="DisplayName"/> (its samplers carry a default schedule: DPM++ 2M's is Karras).
    /// </summary>
    public bool IsAutomaticInA1111 { get; init; }

    /// <summary>
    /// The command-line names of the schedule types (<see cref="ScheduleTypes"/>) this sampler supports; null (the default)
    /// derives them from its class (<see cref="Samplers.SchedulesOf"/>).
    /// </summary>
    public IReadOnlyList<string>? Schedules { get; init; }

    /// <summary>diffusers' class name, e.g. "DPMSolverMultistepScheduler".</summary>
    public string ClassName => Class.Name;

    /// <summary>
    /// The name AUTOMATIC1111 before 1.9 wrote, the schedule folded into the sampler name:
    /// "DPM++ 2M Karras"; the display name alone for the default schedules.
    /// </summary>
    public string LegacyDisplayName => ScheduleType == Samplers.Karras ? $"{DisplayName} {ScheduleType}" : DisplayName;

    /// <summary>Whether <paramref name="config"/> is of this sampler's class and has every override's value.</summary>
    public bool Describes(SchedulerConfig config) => Describes(config, []);

    /// <summary>Whether the config is this sampler's but for the <paramref name="ignored"/> options (a schedule's).</summary>
    public bool Describes(SchedulerConfig config, IReadOnlyCollection<string> ignored)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.ClassName != ClassName) return false;
        if (Overrides.Count == 0) return true;
        var json = config.ToJson();
        return Overrides.Where(o => !ignored.Contains(o.Key)).All(o => JsonNode.DeepEquals(json[o.Key], o.Value));
    }

    /// <summary>The config of this sampler on top of <paramref name="baseConfig"/> (diffusers' from_config; null = the class defaults).</summary>
    public SchedulerConfig ConfigFrom(SchedulerConfig? baseConfig = null) =>
        (baseConfig ?? Class.DefaultConfig()).ConvertTo(ClassName, Overrides);

    /// <summary>This sampler configured from <paramref name="baseConfig"/>.</summary>
    public IScheduler Create(SchedulerConfig? baseConfig = null) => Class.Create(ConfigFrom(baseConfig));

    public override string ToString() => Name;
}
