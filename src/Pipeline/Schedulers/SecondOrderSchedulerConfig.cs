using System.Text.Json.Serialization;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The config diffusers' second-order σ schedulers share (HeunDiscreteScheduler; KDPM2DiscreteScheduler and
/// KDPM2AncestralDiscreteScheduler, which copy it; DPMSolverSDEScheduler; our DPM++ 2S a): Stable Diffusion's beta range
/// instead of <see cref="SchedulerConfig"/>'s, linspace spacing (0.30.3), and Karras sigmas on request.
/// </summary>
public abstract record SecondOrderSchedulerConfig : SchedulerConfig
{
    protected SecondOrderSchedulerConfig()
    {
        BetaStart = 0.00085;
        BetaEnd = 0.012;
        TimestepSpacing = TimestepSpacing.Linspace;
    }

    // first among the keys, where each class declared it before it moved here: the configs we write keep their order
    [JsonPropertyName("use_karras_sigmas"), JsonPropertyOrder(-1)] public bool UseKarrasSigmas { get; init; }
}
