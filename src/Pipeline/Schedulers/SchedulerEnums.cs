using System.Text.Json.Serialization;

namespace LatentDiffusion.Pipeline.Schedulers;

// The string values of diffusers' scheduler options, as they appear in scheduler_config.json.

/// <summary>How the training betas β_1…β_T are laid out (<c>beta_schedule</c>).</summary>
public enum BetaSchedule
{
    [JsonStringEnumMemberName("linear")] Linear,
    [JsonStringEnumMemberName("scaled_linear")] ScaledLinear,
    [JsonStringEnumMemberName("squaredcos_cap_v2")] SquaredCosCapV2,
    [JsonStringEnumMemberName("sigmoid")] Sigmoid,
}

/// <summary>What the model predicts (<c>prediction_type</c>).</summary>
public enum PredictionType
{
    [JsonStringEnumMemberName("epsilon")] Epsilon,
    [JsonStringEnumMemberName("v_prediction")] VPrediction,
    [JsonStringEnumMemberName("sample")] Sample,
}

/// <summary>How inference timesteps are picked from the training ones (<c>timestep_spacing</c>).</summary>
public enum TimestepSpacing
{
    [JsonStringEnumMemberName("linspace")] Linspace,
    [JsonStringEnumMemberName("leading")] Leading,
    [JsonStringEnumMemberName("trailing")] Trailing,

    /// <summary>
    /// Not a diffusers value: AUTOMATIC1111's "Simple" schedule (k-diffusion/ComfyUI's simple_scheduler), every (T/n)-th
    /// training timestep from the last, t_i = T − 1 − ⌊i·T/n⌋. Only the classes that declare it accept it
    /// (<see cref="SchedulerConfig.SupportsSimpleSpacing"/>); a config using it does not load in diffusers.
    /// </summary>
    [JsonStringEnumMemberName("simple")] Simple,
}

/// <summary>DDPM's posterior variance (<c>variance_type</c>).</summary>
public enum VarianceType
{
    [JsonStringEnumMemberName("fixed_small")] FixedSmall,
    [JsonStringEnumMemberName("fixed_small_log")] FixedSmallLog,
    [JsonStringEnumMemberName("fixed_large")] FixedLarge,
    [JsonStringEnumMemberName("fixed_large_log")] FixedLargeLog,
    [JsonStringEnumMemberName("learned")] Learned,
    [JsonStringEnumMemberName("learned_range")] LearnedRange,
}

/// <summary>The last sigma of a sigma schedule (<c>final_sigmas_type</c>).</summary>
public enum FinalSigmasType
{
    [JsonStringEnumMemberName("zero")] Zero,
    [JsonStringEnumMemberName("sigma_min")] SigmaMin,
}

/// <summary>DPM-Solver variant (<c>algorithm_type</c>).</summary>
public enum DpmAlgorithmType
{
    [JsonStringEnumMemberName("dpmsolver++")] DpmSolverPlusPlus,
    [JsonStringEnumMemberName("sde-dpmsolver++")] SdeDpmSolverPlusPlus,
    [JsonStringEnumMemberName("dpmsolver")] DpmSolver,
    [JsonStringEnumMemberName("sde-dpmsolver")] SdeDpmSolver,
}

/// <summary>DPM-Solver's second-order formula (<c>solver_type</c>).</summary>
public enum DpmSolverType
{
    [JsonStringEnumMemberName("midpoint")] Midpoint,
    [JsonStringEnumMemberName("heun")] Heun,
}

/// <summary>How Euler maps inference timesteps to sigmas (<c>interpolation_type</c>).</summary>
public enum InterpolationType
{
    [JsonStringEnumMemberName("linear")] Linear,
    [JsonStringEnumMemberName("log_linear")] LogLinear,
}

/// <summary>What Euler hands the model as timestep (<c>timestep_type</c>).</summary>
public enum TimestepType
{
    [JsonStringEnumMemberName("discrete")] Discrete,
    [JsonStringEnumMemberName("continuous")] Continuous,
}

/// <summary>UniPC's B(h) (<c>solver_type</c>): bh1 = h, bh2 = e^h − 1.</summary>
public enum UniPcSolverType
{
    [JsonStringEnumMemberName("bh1")] Bh1,
    [JsonStringEnumMemberName("bh2")] Bh2,
}

/// <summary>DEIS variant (<c>algorithm_type</c>): diffusers implements only "deis".</summary>
public enum DeisAlgorithmType
{
    [JsonStringEnumMemberName("deis")] Deis,
}

/// <summary>DEIS's polynomial extrapolation (<c>solver_type</c>): diffusers implements only "logrho".</summary>
public enum DeisSolverType
{
    [JsonStringEnumMemberName("logrho")] LogRho,
}
