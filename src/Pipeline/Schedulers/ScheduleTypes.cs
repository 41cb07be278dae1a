using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The schedule types, as AUTOMATIC1111 ≥ 1.9 names them, each as the diffusers options that give it (diffusers'
/// docs map A1111's names the same way):
/// <list type="bullet">
/// <item>Automatic: the sampler's own default (A1111: DPM++ 2M's is Karras; the timestep samplers have only this one).</item>
/// <item>Uniform: the model's discrete sigmas at the config's timestep spacing (k-diffusion's default).</item>
/// <item>Karras: <c>use_karras_sigmas</c> (Karras et al. 2022, ρ = 7).</item>
/// <item>Exponential: <c>use_exponential_sigmas</c> (diffusers ≥ 0.31), σ evenly spaced in log σ.</item>
/// <item>Beta: <c>use_beta_sigmas</c> (diffusers ≥ 0.31), Beta(0.6, 0.6) quantiles between σ_min and σ_max.</item>
/// <item>SGM Uniform: <c>timestep_spacing "trailing"</c>, the spacing SDXL-Turbo/SGM sample with.</item>
/// <item>Simple: AUTOMATIC1111's (k-diffusion/ComfyUI's simple_scheduler) every (T/n)-th model sigma counted from the
/// last, t_i = T − 1 − ⌊i·T/n⌋. diffusers has no such option, so it is the library's own <c>timestep_spacing "simple"</c>
/// (<see cref="TimestepSpacing.Simple"/>), accepted by the σ samplers and DPM++; for step counts that divide T it
/// equals SGM Uniform.</item>
/// </list>
/// </summary>
public static class ScheduleTypes
{
    private const string KarrasKey = "use_karras_sigmas", ExponentialKey = "use_exponential_sigmas", BetaKey = "use_beta_sigmas", SpacingKey = "timestep_spacing";

    public static ScheduleType Automatic { get; } = new() { Name = "automatic", DisplayName = Samplers.Automatic, Description = "the sampler's default" };

    public static ScheduleType Uniform { get; } = new() { Name = "uniform", DisplayName = Samplers.Uniform, Description = "the model's discrete sigmas" };

    public static ScheduleType Karras { get; } = Of("karras", Samplers.Karras, KarrasKey, true, "Karras et al. 2022, rho = 7");

    public static ScheduleType Exponential { get; } = Of("exponential", "Exponential", ExponentialKey, true, "evenly spaced in log sigma");

    public static ScheduleType Beta { get; } = Of("beta", "Beta", BetaKey, true, "Beta(0.6, 0.6) quantiles");

    public static ScheduleType SgmUniform { get; } = Of("sgm_uniform", "SGM Uniform", SpacingKey, "trailing", "trailing timestep spacing");

    public static ScheduleType Simple { get; } = Of("simple", "Simple", SpacingKey, "simple", "every (T/n)-th model sigma");

    /// <summary>Every schedule type, in the order help lists them.</summary>
    public static IReadOnlyList<ScheduleType> All { get; } = [Automatic, Uniform, Karras, Exponential, Beta, SgmUniform, Simple];

    /// <summary>The command-line names.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(s => s.Name).ToArray();

    /// <summary>The σ-spacing options; a schedule type turns the others off.</summary>
    internal static IReadOnlyList<string> SigmaFlags { get; } = [KarrasKey, ExponentialKey, BetaKey];

    /// <summary>The options a schedule type controls: a sampler's own values of them give way to the schedule's.</summary>
    internal static IReadOnlyList<string> ControlledKeys { get; } = [KarrasKey, ExponentialKey, BetaKey, SpacingKey];

    /// <summary>The schedule type by its command-line or AUTOMATIC1111 name (case, spaces, hyphens and underscores do not matter).</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out ScheduleType? schedule)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = Key(name);
        schedule = All.FirstOrDefault(s => Key(s.Name) == key || Key(s.DisplayName) == key);
        return schedule is not null;
    }

    /// <exception cref="ArgumentException">naming the known schedule types.</exception>
    public static ScheduleType Get(string name) => TryGet(name, out var schedule) ? schedule
        : throw new ArgumentException($"unknown schedule type '{name}' (known: {string.Join(", ", Names)})", nameof(name));

    /// <summary>The schedule a config's options select (null: none of them, so the sampler's own).</summary>
    public static ScheduleType? Of(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var json = config.ToJson();
        bool On(string key) => json[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
        if (On(KarrasKey)) return Karras;
        if (On(ExponentialKey)) return Exponential;
        if (On(BetaKey)) return Beta;
        return config.TimestepSpacing switch
        {
            TimestepSpacing.Trailing => SgmUniform,
            TimestepSpacing.Simple => Simple,
            _ => null,
        };
    }

    internal static string Key(string name) =>
        string.Concat(name.Where(c => c is not (' ' or '-' or '_'))).ToLowerInvariant();

    private static ScheduleType Of(string name, string display, string key, JsonNode value, string description) => new()
    {
        Name = name,
        DisplayName = display,
        Overrides = new Dictionary<string, JsonNode?>(StringComparer.Ordinal) { [key] = value },
        Description = description,
    };
}
