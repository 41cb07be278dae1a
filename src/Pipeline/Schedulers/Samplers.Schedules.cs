using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

// The schedule-type dimension of the registry: a sampler (its update rule) combined with a schedule type (the
// spacing of its noise levels) is one of the entries of All when one is declared (DPM++ 2M + Karras = dpmpp_2m_karras),
// otherwise the sampler's entry with the schedule's config options in place of its own.
public static partial class Samplers
{
    private static readonly ConcurrentDictionary<SamplerInfo, IReadOnlyList<ScheduleType>> SupportedCache = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The schedule types <paramref name="sampler"/> supports: its declared <see cref="SamplerInfo.Schedules"/>, or else,
    /// for a σ sampler, Automatic and every schedule whose options its diffusers class has and accepts; only Automatic
    /// for the timestep samplers (DDIM, PLMS, DDPM, LCM), whose schedule A1111 does not let one choose either.
    /// </summary>
    public static IReadOnlyList<ScheduleType> SchedulesOf(SamplerInfo sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        return SupportedCache.GetOrAdd(sampler, s =>
        {
            if (s.Schedules is { } declared) return declared.Select(ScheduleTypes.Get).ToArray();
            if (s.ScheduleType == Automatic) return [ScheduleTypes.Automatic];
            return ScheduleTypes.All.Where(t => t == ScheduleTypes.Automatic || Accepts(s, t)).ToArray();
        });
    }

    /// <summary>
    /// <paramref name="sampler"/> with schedule <paramref name="schedule"/>: the declared entry when there is one
    /// ("DPM++ 2M" + Karras → dpmpp_2m_karras), otherwise the sampler with the schedule's options ("euler_exponential").
    /// Automatic is A1111's default schedule of the sampler (DPM++ 2M → Karras, Euler → Uniform).
    /// </summary>
    /// <exception cref="ArgumentException">when the sampler does not support the schedule, naming the ones it does.</exception>
    public static SamplerInfo WithSchedule(SamplerInfo sampler, ScheduleType schedule)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(schedule);
        var family = All.Where(s => s.DisplayName == sampler.DisplayName && s.Class == sampler.Class).ToList();
        if (schedule == ScheduleTypes.Automatic)
            return family.FirstOrDefault(s => s.IsAutomaticInA1111) ?? family.FirstOrDefault(s => s.ScheduleType == Uniform) ?? sampler;
        if (!SchedulesOf(sampler).Contains(schedule))
        {
            throw new ArgumentException(
                $"sampler '{sampler.Name}' does not support schedule type '{schedule.Name}' (it supports: {string.Join(", ", SchedulesOf(sampler).Select(t => t.Name))})",
                nameof(schedule));
        }
        if (family.FirstOrDefault(s => s.ScheduleType == schedule.DisplayName) is { } declared) return declared;
        var baseName = family.FirstOrDefault(s => s.ScheduleType == Uniform)?.Name ?? sampler.Name;
        return sampler with
        {
            Name = $"{baseName}_{schedule.Name}",
            ScheduleType = schedule.DisplayName,
            Overrides = ScheduleOverrides(sampler, schedule),
            Aliases = [],
            IsAutomaticInA1111 = false,
            Schedules = SchedulesOf(sampler).Select(t => t.Name).ToArray(),
        };
    }

    /// <summary>
    /// The sampler a request names: <paramref name="sampler"/> (any spelling <see cref="Get"/> takes) with
    /// <paramref name="schedule"/> (a schedule type's name; null keeps the sampler's own).
    /// </summary>
    /// <exception cref="ArgumentException">for an unknown name or an unsupported combination.</exception>
    public static SamplerInfo Get(string sampler, string? schedule) =>
        schedule is null ? Get(sampler) : WithSchedule(Get(sampler), ScheduleTypes.Get(schedule));

    // The sampler's options without the ones a schedule controls, every σ flag of the class off, then the schedule's.
    private static Dictionary<string, JsonNode?> ScheduleOverrides(SamplerInfo sampler, ScheduleType schedule)
    {
        var options = SchedulerConfig.PropertiesOf(sampler.Class.ConfigType);
        var result = sampler.Overrides.Where(o => !ScheduleTypes.ControlledKeys.Contains(o.Key))
            .ToDictionary(o => o.Key, o => o.Value?.DeepClone(), StringComparer.Ordinal);
        foreach (var flag in ScheduleTypes.SigmaFlags.Where(options.ContainsKey)) result[flag] = false;
        foreach (var (key, value) in schedule.Overrides) result[key] = value?.DeepClone();
        return result;
    }

    // Whether the class has the schedule's options and its validation accepts them (Euler a has no Karras sigmas).
    private static bool Accepts(SamplerInfo sampler, ScheduleType schedule)
    {
        if (schedule == ScheduleTypes.Uniform) return true;
        try
        {
            _ = sampler.Class.DefaultConfig().ConvertTo(sampler.ClassName, ScheduleOverrides(sampler, schedule));
            return true;
        }
        catch (SchedulerConfigException)
        {
            return false;
        }
    }

    // "Euler Exponential", "dpmpp_2m_beta": a sampler spelling followed by a schedule type's name.
    private static SamplerInfo? WithScheduleSuffix(string key)
    {
        foreach (var schedule in ScheduleTypes.All.Where(t => t != ScheduleTypes.Automatic))
        {
            foreach (var suffix in new[] { Key(schedule.Name), Key(schedule.DisplayName) }.Distinct())
            {
                if (key.Length > suffix.Length + 1 && key.EndsWith("_" + suffix, StringComparison.Ordinal)
                    && ByKey.TryGetValue(key[..^(suffix.Length + 1)], out var sampler) && SchedulesOf(sampler).Contains(schedule))
                    return WithSchedule(sampler, schedule);
            }
        }
        return null;
    }
}
