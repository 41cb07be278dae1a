using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// An AUTOMATIC1111 "Schedule type": how the steps' noise levels are spaced, independent of the sampler's update
/// rule. Each is a set of diffusers config options (<see cref="Overrides"/>) applied on top of a sampler's; see
/// <see cref="ScheduleTypes"/>.
/// </summary>
public sealed record ScheduleType
{
    /// <summary>The command-line name, e.g. "sgm_uniform".</summary>
    public required string Name { get; init; }

    /// <summary>The name AUTOMATIC1111 ≥ 1.9 writes after "Schedule type: ", e.g. "SGM Uniform".</summary>
    public required string DisplayName { get; init; }

    /// <summary>The diffusers config options that make the schedule (empty for Automatic and Uniform).</summary>
    public IReadOnlyDictionary<string, JsonNode?> Overrides { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>What the schedule is, for help texts.</summary>
    public string Description { get; init; } = "";

    public override string ToString() => Name;
}
