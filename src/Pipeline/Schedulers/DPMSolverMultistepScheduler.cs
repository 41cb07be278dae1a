using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DPMSolverMultistepScheduler config and defaults.</summary>
public sealed record DPMSolverMultistepSchedulerConfig : SchedulerConfig
{
    public DPMSolverMultistepSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "DPMSolverMultistepScheduler";

    protected internal override bool SupportsSimpleSpacing => true;

    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("algorithm_type")] public DpmAlgorithmType AlgorithmType { get; init; } = DpmAlgorithmType.DpmSolverPlusPlus;
    [JsonPropertyName("solver_type")] public DpmSolverType SolverType { get; init; } = DpmSolverType.Midpoint;
    /// <summary>Use lower-order steps at the end when there are fewer than 15 steps (stabilises few-step sampling).</summary>
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    [JsonPropertyName("euler_at_final")] public bool EulerAtFinal { get; init; }
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("use_lu_lambdas")] public bool UseLuLambdas { get; init; }
    [JsonPropertyName("use_exponential_sigmas")] public bool UseExponentialSigmas { get; init; }
    [JsonPropertyName("use_beta_sigmas")] public bool UseBetaSigmas { get; init; }
    [JsonPropertyName("use_flow_sigmas")] public bool UseFlowSigmas { get; init; }
    [JsonPropertyName("flow_shift")] public double FlowShift { get; init; } = 1.0;
    [JsonPropertyName("use_dynamic_shifting")] public bool UseDynamicShifting { get; init; }
    [JsonPropertyName("time_shift_type")] public string TimeShiftType { get; init; } = "exponential";
    [JsonPropertyName("final_sigmas_type")] public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    [JsonPropertyName("variance_type")] public VarianceType? VarianceType { get; init; }
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        RequirePositive(FlowShift, "flow_shift");
        if (TimeShiftType is not ("exponential" or "linear"))
            throw Invalid("time_shift_type", $"unsupported value '{TimeShiftType}' (expected one of exponential, linear)");
        if (SolverOrder is < 1 or > 3) throw Invalid("solver_order", $"{SolverOrder} (must be 1, 2 or 3)");
        // sde-dpmsolver++ of order 3 is diffusers ≥ 0.32's (0.30.3 fails there); sde-dpmsolver has no third order anywhere
        if (SolverOrder == 3 && AlgorithmType == DpmAlgorithmType.SdeDpmSolver)
            throw Invalid("solver_order", $"3 is not available for algorithm_type '{EnumName(AlgorithmType)}' (the SDE DPM-Solver is first or second order)");
        if (Thresholding) throw Unsupported("thresholding", true);
        RequireOneSigmaSpacing(UseKarrasSigmas, UseExponentialSigmas, UseBetaSigmas);
        if (UseFlowSigmas) throw Unsupported("use_flow_sigmas", true);
        if (UseDynamicShifting) throw Unsupported("use_dynamic_shifting", true);
        if ((UseKarrasSigmas || UseExponentialSigmas || UseBetaSigmas) && UseLuLambdas)
            throw Invalid("use_lu_lambdas", "cannot be combined with use_karras_sigmas, use_exponential_sigmas or use_beta_sigmas");
        if (VarianceType is not (null or Schedulers.VarianceType.Learned or Schedulers.VarianceType.LearnedRange))
            throw Invalid("variance_type", $"'{EnumName(VarianceType.Value)}' (DPM-Solver accepts null, learned or learned_range)");
        if (AlgorithmType is DpmAlgorithmType.DpmSolver or DpmAlgorithmType.SdeDpmSolver && FinalSigmasType == FinalSigmasType.Zero)
            throw Invalid("final_sigmas_type", $"'zero' is not supported with algorithm_type '{EnumName(AlgorithmType)}'; use 'sigma_min'");
    }
}

/// <summary>
/// DPM-Solver / DPM-Solver++ multistep (Lu et al. 2022): exponential-integrator steps in
/// λ = log(α/σ), reusing the previous data predictions for 2nd/3rd order. "DPM++ 2M" is
/// algorithm dpmsolver++ with solver_order 2; the SDE variants ("DPM++ 2M SDE", "DPM++ 3M SDE" = sde-dpmsolver++
/// of order 2 and 3) draw one float32 noise tensor from the noise source every step, as diffusers' randn_tensor.
/// </summary>
public sealed class DPMSolverMultistepScheduler : Scheduler, ISigmaSchedule
{
    private readonly float[] trainingSigmas;
    private readonly float[] logTrainingSigmas;
    private readonly ModelOutputHistory modelOutputs;   // converted outputs of the last solver_order steps, newest last (owned)
    private float[] sigmas;
    private int lowerOrderNums;

    public DPMSolverMultistepScheduler(DPMSolverMultistepSchedulerConfig? config = null)
        : base(config ?? new DPMSolverMultistepSchedulerConfig())
    {
        if (Config.RescaleBetasZeroSnr) AlphasCumprod[^1] = MathF.Pow(2, -24);
        trainingSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
        logTrainingSigmas = ScheduleMath.Log(trainingSigmas);
        sigmas = trainingSigmas;
        modelOutputs = new ModelOutputHistory(Config.SolverOrder);
    }

    public override DPMSolverMultistepSchedulerConfig Config => (DPMSolverMultistepSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    public IReadOnlyList<float> Sigmas => sigmas;

    private bool IsPlusPlus => DpmSolverUpdates.IsDataPrediction(Config.AlgorithmType);

    private bool IsSde => Config.AlgorithmType is DpmAlgorithmType.SdeDpmSolverPlusPlus or DpmAlgorithmType.SdeDpmSolver;

    protected override double[] ComputeTimesteps(int steps)
    {
        int trainSteps = Config.NumTrainTimesteps;
        int lastTimestep = trainSteps - DpmSolverUpdates.LambdaClippedCount(AlphasCumprod, Config.LambdaMinClipped);

        double[] timesteps = Config.TimestepSpacing switch
        {
            // linspace(0, last − 1, n + 1), rounded, descending, without the final 0
            TimestepSpacing.Linspace => ScheduleMath.Linspace(0, lastTimestep - 1, steps + 1).Select(ScheduleMath.Round).Reverse().Take(steps).ToArray(),
            TimestepSpacing.Simple => ScheduleMath.SpacedTimesteps(TimestepSpacing.Simple, trainSteps, steps, 0),
            TimestepSpacing.Leading => Enumerable.Range(0, steps + 1).Select(i => (double)(i * (lastTimestep / (steps + 1)))).Reverse().Take(steps).Select(t => t + Config.StepsOffset).ToArray(),
            _ => ScheduleMath.Arange(lastTimestep, 0, -(trainSteps / (double)steps)).Select(t => ScheduleMath.Round(t) - 1).ToArray(),
        };

        double[] s;
        // Karras, or (diffusers ≥ 0.31) exponential or beta spacing over the training σ range
        if (ScheduleMath.ConvertedSigmas(Config.UseKarrasSigmas, Config.UseExponentialSigmas, Config.UseBetaSigmas, trainingSigmas[0], trainingSigmas[^1], steps) is { } converted)
        {
            s = converted;
            timesteps = s.Select(v => ScheduleMath.Round(ScheduleMath.SigmaToT(v, logTrainingSigmas))).ToArray();
        }
        else if (Config.UseLuLambdas)
        {
            // λ evenly spaced from log σ_max to log σ_min (Lu et al., "uniform logSNR")
            double lambdaMax = logTrainingSigmas[^1], lambdaMin = logTrainingSigmas[0];
            s = ScheduleMath.Linspace(0, 1, steps).Select(r => Math.Exp(lambdaMax + r * (lambdaMin - lambdaMax))).ToArray();
            timesteps = s.Select(v => ScheduleMath.Round(ScheduleMath.SigmaToT(v, logTrainingSigmas))).ToArray();
        }
        else
        {
            s = timesteps.Select(t => ScheduleMath.Interp(t, trainingSigmas)).ToArray();
        }
        float last = Config.FinalSigmasType == FinalSigmasType.SigmaMin ? trainingSigmas[0] : 0f;
        sigmas = s.Select(v => (float)v).Append(last).ToArray();
        return timesteps;
    }

    protected override void ResetHistory()
    {
        modelOutputs.Clear();
        lowerOrderNums = 0;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        int n = Timesteps.Count;
        bool lowerOrderFinal = i == n - 1 &&
            (Config.EulerAtFinal || (Config.LowerOrderFinal && n < 15) || Config.FinalSigmasType == FinalSigmasType.Zero);
        bool lowerOrderSecond = i == n - 2 && Config.LowerOrderFinal && n < 15;

        using var scope = DisposeScope.Enter();
        var converted = DpmSolverUpdates.ConvertModelOutput(modelOutput, sample, sigmas[i], Config.AlgorithmType, Config.PredictionType, Config.VarianceType is not null);
        modelOutputs.Push(converted);

        var x = sample.To(DType.Float32);
        Tensor? z = IsSde ? DrawNoise(noise, modelOutput, DType.Float32) : null;

        Tensor prev;
        if (Config.SolverOrder == 1 || lowerOrderNums < 1 || lowerOrderFinal)
            prev = DpmSolverUpdates.FirstOrderUpdate(Config.AlgorithmType, DpmInterval.Between(sigmas[i], sigmas[i + 1]), x, converted, z);
        else if (Config.SolverOrder == 2 || lowerOrderNums < 2 || lowerOrderSecond)
            prev = SecondOrderUpdate(x, i, z);
        else
            prev = ThirdOrderUpdate(x, i, z);
        if (lowerOrderNums < Config.SolverOrder) lowerOrderNums++;

        prev = prev.To(modelOutput.DType);
        StepIndex = i + 1;
        // the data prediction x̂₀ (dpmsolver++); the ε-form variants have none
        var predOriginal = IsPlusPlus ? converted.Alias() : null;
        return new SchedulerStepOutput(scope.Keep(prev), predOriginal is null ? null : scope.Keep(predOriginal));
    }

    /// <summary>Multistep second order from σ_i: D0 = m0, D1 = (m0 − m1)/r0 with r0 = h_{prev}/h.</summary>
    private Tensor SecondOrderUpdate(Tensor x, int i, Tensor? z)
    {
        var step = DpmInterval.Between(sigmas[i], sigmas[i + 1]);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        double h0 = Lambda(sigmas[i]) - Lambda(sigmas[i - 1]), r0 = h0 / step.H;
        var d1 = 1.0 / r0 * (m0 - m1);
        return DpmSolverUpdates.SecondOrderUpdate(Config.AlgorithmType, Config.SolverType, step, x, m0, d1, z);
    }

    /// <summary>
    /// Multistep third order from the last three outputs: D1 and D2 extrapolate the first and second differences of
    /// m0, m1, m2 (spaced r0 h, r1 h in λ) to σ_i. The sde-dpmsolver++ form ("DPM++ 3M SDE") is diffusers 0.32's (#9104);
    /// 0.30.3 has only the ODE forms.
    /// </summary>
    private Tensor ThirdOrderUpdate(Tensor x, int i, Tensor? z)
    {
        var step = DpmInterval.Between(sigmas[i], sigmas[i + 1]);
        double lambdaS0 = Lambda(sigmas[i]), lambdaS1 = Lambda(sigmas[i - 1]), lambdaS2 = Lambda(sigmas[i - 2]);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        var m2 = modelOutputs[^3]!;
        double h0 = lambdaS0 - lambdaS1, h1 = lambdaS1 - lambdaS2;
        double r0 = h0 / step.H, r1 = h1 / step.H;
        var d10 = 1.0 / r0 * (m0 - m1);
        var d11 = 1.0 / r1 * (m1 - m2);
        var d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
        var d2 = 1.0 / (r0 + r1) * (d10 - d11);
        return DpmSolverUpdates.TaylorUpdate(Config.AlgorithmType, step, x, m0, d1, d2, z);
    }

    /// <summary>diffusers' DPM-Solver copy of index_for_timestep falls back to the last index.</summary>
    protected override int IndexWhenAbsent(double timestep) => Timesteps.Count - 1;

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseVp(original, noise, timesteps, sigmas);
}
