using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The sampler registry: every scheduler class and every sampler is declared here once, and everything
/// else derives from it: the command line's --sampler help and validation, <see cref="SchedulerFactory"/>,
/// scheduler_config.json loading, the "Sampler" / "Schedule type" fields of a PNG's parameters and reading
/// them back, and which sampler a model's scheduler config is.
/// <para>
/// Adding a sampler touches its own scheduler file (when it needs a new scheduler class: one line in
/// <see cref="Classes"/>), one entry in <see cref="All"/>, and its test (SamplerRegistryTests checks every
/// entry round-trips; a golden test in SchedulerReferenceTests for a new class).
/// </para>
/// <para>
/// PNG parameters follow AUTOMATIC1111 ≥ 1.9: <c>Sampler: DPM++ 2M, Schedule type: Karras</c>. We always
/// write an explicit schedule type, because A1111's "Automatic" depends on the sampler (DPM++ 2M's automatic
/// schedule is Karras): "Karras" for the Karras-sigma samplers, "Uniform" (the model's own discrete sigmas,
/// k-diffusion's default) for the other σ samplers (UniPC and DEIS too), and "Automatic" for the timestep samplers
/// (DDIM, PLMS, DDPM, LCM, TCD), whose schedule A1111 does not let one choose. Older files, which fold the schedule into the
/// name (<c>Sampler: DPM++ 2M Karras</c>), are read as well (<see cref="FromParameters"/>).
/// </para>
/// <para>
/// Schedule types (<see cref="ScheduleTypes"/>) are a second dimension (Samplers.Schedules.cs): a sampler combined with
/// any schedule its class supports is the declared entry of that schedule or the sampler with the schedule's options.
/// </para>
/// </summary>
public static partial class Samplers
{
    /// <summary>A1111's schedule type labels used here.</summary>
    public const string Automatic = "Automatic", Uniform = "Uniform", Karras = "Karras";

    private static readonly SchedulerClass Ddpm = SchedulerClass.Of<DDPMSchedulerConfig>(c => new DDPMScheduler(c));
    private static readonly SchedulerClass Ddim = SchedulerClass.Of<DDIMSchedulerConfig>(c => new DDIMScheduler(c));
    private static readonly SchedulerClass Pndm = SchedulerClass.Of<PNDMSchedulerConfig>(c => new PNDMScheduler(c));
    private static readonly SchedulerClass Euler = SchedulerClass.Of<EulerDiscreteSchedulerConfig>(c => new EulerDiscreteScheduler(c));
    private static readonly SchedulerClass EulerAncestral = SchedulerClass.Of<EulerAncestralDiscreteSchedulerConfig>(c => new EulerAncestralDiscreteScheduler(c));
    private static readonly SchedulerClass DpmSolver = SchedulerClass.Of<DPMSolverMultistepSchedulerConfig>(c => new DPMSolverMultistepScheduler(c));
    private static readonly SchedulerClass Lms = SchedulerClass.Of<LMSDiscreteSchedulerConfig>(c => new LMSDiscreteScheduler(c));
    private static readonly SchedulerClass Lcm = SchedulerClass.Of<LCMSchedulerConfig>(c => new LCMScheduler(c));
    private static readonly SchedulerClass Heun = SchedulerClass.Of<HeunDiscreteSchedulerConfig>(c => new HeunDiscreteScheduler(c));
    private static readonly SchedulerClass Kdpm2 = SchedulerClass.Of<KDPM2DiscreteSchedulerConfig>(c => new KDPM2DiscreteScheduler(c));
    private static readonly SchedulerClass Kdpm2Ancestral = SchedulerClass.Of<KDPM2AncestralDiscreteSchedulerConfig>(c => new KDPM2AncestralDiscreteScheduler(c));
    private static readonly SchedulerClass UniPc = SchedulerClass.Of<UniPCMultistepSchedulerConfig>(c => new UniPCMultistepScheduler(c));
    private static readonly SchedulerClass Deis = SchedulerClass.Of<DEISMultistepSchedulerConfig>(c => new DEISMultistepScheduler(c));
    private static readonly SchedulerClass Tcd = SchedulerClass.Of<TCDSchedulerConfig>(c => new TCDScheduler(c));
    private static readonly SchedulerClass DpmSolverSinglestep = SchedulerClass.Of<DPMSolverSinglestepSchedulerConfig>(c => new DPMSolverSinglestepScheduler(c));
    private static readonly SchedulerClass DpmSolverSde = SchedulerClass.Of<DPMSolverSDESchedulerConfig>(c => new DPMSolverSDEScheduler(c));
    private static readonly SchedulerClass DpmSolver2SAncestral = SchedulerClass.Of<DPMSolver2SAncestralSchedulerConfig>(c => new DPMSolver2SAncestralScheduler(c));

    /// <summary>The diffusers scheduler classes this library implements.</summary>
    public static IReadOnlyList<SchedulerClass> Classes { get; } = [Ddpm, Ddim, Pndm, Euler, EulerAncestral, DpmSolver, Lms, Lcm,
        Heun, Kdpm2, Kdpm2Ancestral, UniPc, Deis, Tcd, DpmSolverSinglestep, DpmSolverSde, DpmSolver2SAncestral];

    /// <summary>The samplers, in the order the help lists them (A1111's names → diffusers class + options, as diffusers' docs map them).</summary>
    public static IReadOnlyList<SamplerInfo> All { get; } =
    [
        Entry("euler", "Euler", Uniform, Euler, ("use_karras_sigmas", false)) with { Aliases = ["k_euler"] },
        Entry("euler_a", "Euler a", Uniform, EulerAncestral) with { Aliases = ["euler_ancestral", "k_euler_a", "k_euler_ancestral"] },
        Entry("dpmpp_2m", "DPM++ 2M", Uniform, DpmSolver, ("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", false))
            with { Aliases = ["k_dpmpp_2m"] },
        Entry("dpmpp_2m_karras", "DPM++ 2M", Karras, DpmSolver, ("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", true))
            with { Aliases = ["k_dpmpp_2m_ka"], IsAutomaticInA1111 = true },
        Entry("ddim", "DDIM", Automatic, Ddim),
        Entry("ddpm", "DDPM", Automatic, Ddpm),
        Entry("pndm", "PLMS", Automatic, Pndm, ("skip_prk_steps", true)) with { Aliases = ["plms"] }, // PLMS: no Runge–Kutta warm-up
        Entry("lms", "LMS", Uniform, Lms, ("use_karras_sigmas", false)) with { Aliases = ["k_lms"] },
        Entry("lms_karras", "LMS", Karras, Lms, ("use_karras_sigmas", true)) with { Aliases = ["k_lms_ka"] },
        Entry("euler_karras", "Euler", Karras, Euler, ("use_karras_sigmas", true)),
        Entry("lcm", "LCM", Automatic, Lcm),
        // second order: two model calls per step (diffusers' order = 2)
        Entry("heun", "Heun", Uniform, Heun, ("use_karras_sigmas", false)) with { Aliases = ["k_heun"] },
        Entry("heun_karras", "Heun", Karras, Heun, ("use_karras_sigmas", true)),
        Entry("dpm2", "DPM2", Uniform, Kdpm2, ("use_karras_sigmas", false)) with { Aliases = ["k_dpm_2"] },
        Entry("dpm2_karras", "DPM2", Karras, Kdpm2, ("use_karras_sigmas", true)) with { Aliases = ["k_dpm_2_ka"] },
        Entry("dpm2_a", "DPM2 a", Uniform, Kdpm2Ancestral, ("use_karras_sigmas", false)) with { Aliases = ["dpm2_ancestral", "k_dpm_2_a"] },
        Entry("dpm2_a_karras", "DPM2 a", Karras, Kdpm2Ancestral, ("use_karras_sigmas", true)) with { Aliases = ["k_dpm_2_a_ka"] },
        Entry("unipc", "UniPC", Uniform, UniPc, ("use_karras_sigmas", false)),
        Entry("unipc_karras", "UniPC", Karras, UniPc, ("use_karras_sigmas", true)),
        Entry("deis", "DEIS", Uniform, Deis, ("use_karras_sigmas", false)),
        Entry("tcd", "TCD", Automatic, Tcd),
        // "DPM++ 2M SDE" as diffusers maps it: one Gaussian draw per step (A1111's k-diffusion draws from a Brownian tree)
        Entry("dpmpp_2m_sde", "DPM++ 2M SDE", Uniform, DpmSolver, ("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", false))
            with { Aliases = ["k_dpmpp_2m_sde"] },
        Entry("dpmpp_2m_sde_karras", "DPM++ 2M SDE", Karras, DpmSolver, ("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", true))
            with { Aliases = ["k_dpmpp_2m_sde_ka"] }, // A1111's automatic schedule for it is Exponential, which we lack
        Entry("dpmpp_3m_sde", "DPM++ 3M SDE", Uniform, DpmSolver, ("algorithm_type", "sde-dpmsolver++"), ("solver_order", 3), ("use_karras_sigmas", false))
            with { Aliases = ["k_dpmpp_3m_sde"] },
        Entry("dpmpp_3m_sde_karras", "DPM++ 3M SDE", Karras, DpmSolver, ("algorithm_type", "sde-dpmsolver++"), ("solver_order", 3), ("use_karras_sigmas", true))
            with { Aliases = ["k_dpmpp_3m_sde_ka"] },
        // "DPM++ SDE": noise from our Brownian tree, reproducible run to run, not torchsde's numbers
        Entry("dpmpp_sde", "DPM++ SDE", Uniform, DpmSolverSde, ("use_karras_sigmas", false)) with { Aliases = ["k_dpmpp_sde"] },
        Entry("dpmpp_sde_karras", "DPM++ SDE", Karras, DpmSolverSde, ("use_karras_sigmas", true))
            with { Aliases = ["k_dpmpp_sde_ka"], IsAutomaticInA1111 = true },
        // "DPM++ 2S a": our own class after k-diffusion's sample_dpmpp_2s_ancestral (diffusers has none); A1111 1.9 defaults it to Karras
        Entry("dpmpp_2s_a", "DPM++ 2S a", Uniform, DpmSolver2SAncestral, ("use_karras_sigmas", false)) with { Aliases = ["k_dpmpp_2s_a"] },
        Entry("dpmpp_2s_a_karras", "DPM++ 2S a", Karras, DpmSolver2SAncestral, ("use_karras_sigmas", true)) with { IsAutomaticInA1111 = true },
    ];

    /// <summary>The command-line names, e.g. "euler_a".</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(s => s.Name).ToArray();

    // Every spelling (name, alias, display name before and after A1111 1.9) by its normalised key.
    private static readonly Dictionary<string, SamplerInfo> ByKey = IndexSpellings();

    // Most specific first: a config matching "dpmpp_2m_karras" also has the class of a bare entry.
    private static readonly SamplerInfo[] BySpecificity = All.OrderByDescending(s => s.Overrides.Count).ToArray();

    /// <summary>The scheduler class named <paramref name="className"/> (diffusers' <c>_class_name</c>).</summary>
    /// <exception cref="SchedulerConfigException">when this library does not implement it.</exception>
    public static SchedulerClass Class(string className) =>
        Classes.FirstOrDefault(c => c.Name == className)
        ?? throw new SchedulerConfigException("_class_name", $"unknown or unsupported scheduler '{className}' (supported: {string.Join(", ", Classes.Select(c => c.Name))})");

    /// <summary>
    /// The sampler a user named: its command-line name, an alias or an AUTOMATIC1111 name; case, spaces
    /// and hyphens do not matter, "++" may be "pp" ("DPM++ 2M Karras" → dpmpp_2m_karras).
    /// </summary>
    /// <exception cref="ArgumentException">naming the known samplers, when there is no such sampler.</exception>
    public static SamplerInfo Get(string name) => TryGet(name, out var sampler) ? sampler
        : throw new ArgumentException($"unknown sampler '{name}' (known: {string.Join(", ", Names)})", nameof(name));

    /// <summary>The sampler a user named, as <see cref="Get"/>; false when there is none.</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out SamplerInfo? sampler)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (ByKey.TryGetValue(Key(name), out sampler)) return true;
        sampler = WithScheduleSuffix(Key(name));
        return sampler is not null;
    }

    /// <summary>
    /// The sampler a scheduler config is: the entry whose class matches and whose overrides all match the
    /// config, most specific first; null when none does (e.g. DPM-Solver of order 3).
    /// </summary>
    /// The schedule options (<see cref="ScheduleTypes.Of"/>) pick the schedule type: Euler with use_exponential_sigmas is euler_exponential.
    public static SamplerInfo? Of(SchedulerConfig config)
    {
        var sampler = BySpecificity.FirstOrDefault(s => s.Describes(config));
        // A schedule no entry declares (DEIS with Karras sigmas): the entry that matches but for the schedule's options.
        if (sampler is null && ScheduleTypes.Of(config) is { } undeclared)
        {
            return BySpecificity.FirstOrDefault(s => s.Describes(config, ScheduleTypes.ControlledKeys) && SchedulesOf(s).Contains(undeclared))
                is { } family ? WithSchedule(family, undeclared) : null;
        }
        // (an entry that sets the schedule's option itself, e.g. a trailing-spacing entry, is already what it declares)
        return sampler is not null && ScheduleTypes.Of(config) is { } schedule && schedule.DisplayName != sampler.ScheduleType
            && !schedule.Overrides.Keys.Any(sampler.Overrides.ContainsKey)
            && SchedulesOf(sampler).Contains(schedule) ? WithSchedule(sampler, schedule) : sampler;
    }

    /// <summary>
    /// The sampler of a PNG's <c>Sampler</c> and <c>Schedule type</c> fields, as AUTOMATIC1111 reads them:
    /// no schedule type (before 1.9) means the name carries it ("DPM++ 2M Karras"); "Automatic" means the
    /// sampler's default schedule. Null when no sampler here matches.
    /// </summary>
    public static SamplerInfo? FromParameters(string sampler, string? scheduleType)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        if (scheduleType is null) return All.FirstOrDefault(s => Key(s.LegacyDisplayName) == Key(sampler)) ?? (TryGet(sampler, out var named) ? named : null);
        var candidates = All.Where(s => Key(s.DisplayName) == Key(sampler)).ToList();
        if (candidates.Count == 0)
        {
            // A1111 strips a schedule folded into the name first ("DPM++ 2M Karras", "Schedule type: Karras").
            return TryGet(sampler, out var named) ? named : null;
        }
        return candidates.FirstOrDefault(s => Key(s.ScheduleType) == Key(scheduleType))
            // a schedule no entry declares: the sampler with that schedule ("Euler", "Exponential")
            ?? (ScheduleTypes.TryGet(scheduleType, out var schedule) && schedule != ScheduleTypes.Automatic
                && candidates.FirstOrDefault(s => SchedulesOf(s).Contains(schedule)) is { } family ? WithSchedule(family, schedule) : null)
            ?? (Key(scheduleType) == Key(Automatic)
                ? candidates.FirstOrDefault(s => s.IsAutomaticInA1111) ?? candidates.FirstOrDefault(s => s.ScheduleType == Uniform)
                : null)
            // A1111 ignores the schedule of its timestep samplers (DDIM, PLMS, …).
            ?? (candidates is [{ ScheduleType: Automatic } only] ? only : null);
    }

    /// <summary>The sampler recorded in <paramref name="parameters"/>; null when no sampler here matches.</summary>
    public static SamplerInfo? FromParameters(Imaging.GenerationParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return FromParameters(parameters.Sampler, parameters.ScheduleType);
    }

    /// <summary>
    /// What a PNG's parameters say for a scheduler config: its sampler's display name and schedule type,
    /// or, for a config no sampler describes, the diffusers class name and no schedule type.
    /// </summary>
    public static (string Sampler, string? ScheduleType) ParameterNames(SchedulerConfig config) =>
        Of(config) is { } sampler ? (sampler.DisplayName, sampler.ScheduleType) : (config.ClassName, null);

    private static SamplerInfo Entry(string name, string display, string scheduleType, SchedulerClass schedulerClass, params (string Key, JsonNode? Value)[] overrides) =>
        new()
        {
            Name = name,
            DisplayName = display,
            ScheduleType = scheduleType,
            Class = schedulerClass,
            Overrides = overrides.ToDictionary(o => o.Key, o => o.Value, StringComparer.Ordinal),
        };

    // "DPM++ 2M Karras", "dpmpp-2m-karras" and "DPMPP_2M_Karras" are one key.
    private static string Key(string name) =>
        string.Join('_', name.Trim().ToLowerInvariant().Replace("++", "pp", StringComparison.Ordinal)
            .Split([' ', '-', '_'], StringSplitOptions.RemoveEmptyEntries));

    private static Dictionary<string, SamplerInfo> IndexSpellings()
    {
        var index = new Dictionary<string, SamplerInfo>(StringComparer.Ordinal);
        foreach (var sampler in All)
        {
            foreach (var spelling in new[] { sampler.Name, sampler.LegacyDisplayName, $"{sampler.DisplayName} {sampler.ScheduleType}" }.Concat(sampler.Aliases))
            {
                var key = Key(spelling);
                if (index.TryGetValue(key, out var other) && other != sampler)
                {
                    // "Euler Uniform" and "Euler" both mean euler; only a clash between two samplers is an error.
                    throw new InvalidOperationException($"sampler spelling '{spelling}' names both {other.Name} and {sampler.Name}");
                }
                index[key] = sampler;
            }
        }
        return index;
    }
}
