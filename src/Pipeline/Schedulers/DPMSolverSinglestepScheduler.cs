using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DPMSolverSinglestepScheduler config and defaults (0.30.3: no timestep_spacing, always "linspace").</summary>
public sealed record DPMSolverSinglestepSchedulerConfig : SchedulerConfig
{
    [JsonIgnore] public override string ClassName => "DPMSolverSinglestepScheduler";

    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("algorithm_type")] public DpmAlgorithmType AlgorithmType { get; init; } = DpmAlgorithmType.DpmSolverPlusPlus;
    [JsonPropertyName("solver_type")] public DpmSolverType SolverType { get; init; } = DpmSolverType.Midpoint;
    /// <summary>
    /// End on lower orders. The class default is false (its docstring says true), but set_timesteps turns it on
    /// for good whenever final_sigmas_type is "zero" (the default) or the step count is not a multiple of the order.
    /// </summary>
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; }
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("final_sigmas_type")] public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    [JsonPropertyName("variance_type")] public VarianceType? VarianceType { get; init; }

    public override void Validate()
    {
        base.Validate();
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (SolverOrder is < 1 or > 3) throw Invalid("solver_order", $"{SolverOrder} (must be 1, 2 or 3)");
        if (Thresholding) throw Unsupported("thresholding", true);
        if (VarianceType is not (null or Schedulers.VarianceType.Learned or Schedulers.VarianceType.LearnedRange))
            throw Invalid("variance_type", $"'{EnumName(VarianceType.Value)}' (DPM-Solver accepts null, learned or learned_range)");
        // diffusers 0.30.3 draws step noise only for sde-dpmsolver++, and its first-order update asserts it has noise
        if (AlgorithmType == DpmAlgorithmType.SdeDpmSolver)
            throw Invalid("algorithm_type", "'sde-dpmsolver' fails in diffusers' singlestep solver (it draws no noise for it); use DPMSolverMultistepScheduler");
        // its third-order update has no SDE branch
        if (SolverOrder == 3 && AlgorithmType == DpmAlgorithmType.SdeDpmSolverPlusPlus)
            throw Invalid("solver_order", "3 is not available for algorithm_type 'sde-dpmsolver++' (the singlestep SDE solver is first or second order)");
        if (AlgorithmType == DpmAlgorithmType.DpmSolver && FinalSigmasType == FinalSigmasType.Zero)
            throw Invalid("final_sigmas_type", $"'zero' is not supported with algorithm_type '{EnumName(AlgorithmType)}'; use 'sigma_min'");
    }
}

/// <summary>
/// DPM-Solver / DPM-Solver++ singlestep (Lu et al. 2022): each interval [s, t] of the schedule is split into
/// <c>solver_order</c> sub-steps, which start from the sample at s and use the model outputs taken inside the
/// interval (the order list 1, 2, (3), 1, 2, … says where each sub-step is), instead of the previous intervals'
/// outputs as the multistep solver does. One step() per timestep, as diffusers. As in 0.30.3, a final σ of 0 does
/// not force the last order to 1 (diffusers 0.32 does: it changes order 3 with 3k + 2 steps).
/// </summary>
public sealed class DPMSolverSinglestepScheduler : Scheduler, ISigmaSchedule
{
    private readonly float[] trainingSigmas;
    private readonly float[] logTrainingSigmas;
    private readonly ModelOutputHistory modelOutputs;   // converted outputs since the interval began, newest last (owned)
    private Tensor? intervalSample;            // diffusers' self.sample: the sample where the current interval began (owned)
    private float[] sigmas;
    private int[] orderList = [];
    private bool lowerOrderFinal;

    public DPMSolverSinglestepScheduler(DPMSolverSinglestepSchedulerConfig? config = null)
        : base(config ?? new DPMSolverSinglestepSchedulerConfig())
    {
        trainingSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
        logTrainingSigmas = ScheduleMath.Log(trainingSigmas);
        sigmas = trainingSigmas;
        modelOutputs = new ModelOutputHistory(Config.SolverOrder);
        lowerOrderFinal = Config.LowerOrderFinal;
    }

    public override DPMSolverSinglestepSchedulerConfig Config => (DPMSolverSinglestepSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    public IReadOnlyList<float> Sigmas => sigmas;

    /// <summary>The solver order of each step (diffusers' order_list).</summary>
    public IReadOnlyList<int> OrderList => orderList;

    private bool IsPlusPlus => DpmSolverUpdates.IsDataPrediction(Config.AlgorithmType);

    protected override double[] ComputeTimesteps(int steps)
    {
        int trainSteps = Config.NumTrainTimesteps;
        int clipped = DpmSolverUpdates.LambdaClippedCount(AlphasCumprod, Config.LambdaMinClipped);
        // linspace(0, T − 1 − clipped_idx, n + 1).round()[::-1][:-1]
        double[] timesteps = ScheduleMath.Linspace(0, trainSteps - 1 - clipped, steps + 1).Select(ScheduleMath.Round).Reverse().Take(steps).ToArray();

        double[] s;
        if (Config.UseKarrasSigmas)
        {
            s = ScheduleMath.KarrasSigmas(trainingSigmas[0], trainingSigmas[^1], steps);
            timesteps = s.Select(v => ScheduleMath.Round(ScheduleMath.SigmaToT(v, logTrainingSigmas))).ToArray();
        }
        else
        {
            s = timesteps.Select(t => ScheduleMath.Interp(t, trainingSigmas)).ToArray();
        }
        float last = Config.FinalSigmasType == FinalSigmasType.SigmaMin ? trainingSigmas[0] : 0f;
        sigmas = s.Select(v => (float)v).Append(last).ToArray();

        // set_timesteps' register_to_config(lower_order_final=True): it sticks for the scheduler's later schedules
        if (steps % Config.SolverOrder != 0 || Config.FinalSigmasType == FinalSigmasType.Zero) lowerOrderFinal = true;
        orderList = OrdersOfSteps(steps, Config.SolverOrder, lowerOrderFinal);
        return timesteps;
    }

    /// <summary>diffusers' get_order_list: groups 1, 2(, 3) per interval, the last group shortened with lower_order_final.</summary>
    internal static int[] OrdersOfSteps(int steps, int order, bool lowerOrderFinal)
    {
        static IEnumerable<int> Groups(int count, int order) => Enumerable.Repeat(Enumerable.Range(1, order), Math.Max(count, 0)).SelectMany(g => g);
        if (!lowerOrderFinal || order == 1) return Groups(steps / order, order).ToArray();
        if (order == 3)
        {
            return (steps % 3) switch
            {
                0 => Groups(steps / 3 - 1, 3).Concat([1, 2, 1]).ToArray(),
                1 => Groups(steps / 3, 3).Append(1).ToArray(),
                _ => Groups(steps / 3, 3).Concat([1, 2]).ToArray(),
            };
        }
        return steps % 2 == 0 ? Groups(steps / 2 - 1, 2).Concat([1, 1]).ToArray() : Groups(steps / 2, 2).Append(1).ToArray();
    }

    protected override void ResetHistory()
    {
        modelOutputs.Clear();
        intervalSample?.Dispose();
        intervalSample = null;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        var converted = DpmSolverUpdates.ConvertModelOutput(modelOutput, sample, sigmas[i], Config.AlgorithmType, Config.PredictionType, Config.VarianceType is not null);
        modelOutputs.Push(converted);

        // drawn in model_output's dtype (the multistep solver draws float32), every step, also where unused
        Tensor? z = Config.AlgorithmType == DpmAlgorithmType.SdeDpmSolverPlusPlus ? DrawNoise(noise, modelOutput) : null;

        // img2img may begin inside an interval: lower the order until every output it needs exists
        int order = orderList[i];
        while (modelOutputs[^order] is null) order--;
        if (order == 1)
        {
            intervalSample?.Dispose();
            intervalSample = sample.Alias().DetachFromDisposeScope();
        }

        var x = intervalSample!;
        var prev = order switch
        {
            1 => DpmSolverUpdates.FirstOrderUpdate(Config.AlgorithmType, DpmInterval.Between(sigmas[i], sigmas[i + 1]), x, modelOutputs[^1]!, z),
            2 => SecondOrderUpdate(x, i, z),
            _ => ThirdOrderUpdate(x, i),
        };
        StepIndex = i + 1;
        var predOriginal = IsPlusPlus ? converted.Alias() : null;
        return new SchedulerStepOutput(scope.Keep(prev), predOriginal is null ? null : scope.Keep(predOriginal));
    }

    /// <summary>
    /// Singlestep second order from the interval start s1 = σ_{i−1} to σ_{i+1}, through s0 = σ_i:
    /// D0 = m1 (the output at s1), D1 = (m0 − m1)/r0 with r0 = (λ_{s0} − λ_{s1})/h.
    /// </summary>
    private Tensor SecondOrderUpdate(Tensor x, int i, Tensor? z)
    {
        var step = DpmInterval.Between(sigmas[i - 1], sigmas[i + 1]);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        double h0 = Lambda(sigmas[i]) - Lambda(sigmas[i - 1]), r0 = h0 / step.H;
        var d1 = 1.0 / r0 * (m0 - m1);
        return DpmSolverUpdates.SecondOrderUpdate(Config.AlgorithmType, Config.SolverType, step, x, m1, d1, z);
    }

    /// <summary>
    /// Singlestep third order from the interval start s2 = σ_{i−2} to σ_{i+1}, through s1 and s0. diffusers' midpoint
    /// form uses only D1_1 = (m0 − m2)/r0 and no D2; the heun form uses D1 and D2.
    /// </summary>
    private Tensor ThirdOrderUpdate(Tensor x, int i)
    {
        var step = DpmInterval.Between(sigmas[i - 2], sigmas[i + 1]);
        double lambdaS0 = Lambda(sigmas[i]), lambdaS1 = Lambda(sigmas[i - 1]), lambdaS2 = Lambda(sigmas[i - 2]);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        var m2 = modelOutputs[^3]!;
        double h0 = lambdaS0 - lambdaS2, h1 = lambdaS1 - lambdaS2;
        double r0 = h0 / step.H, r1 = h1 / step.H;
        var d10 = 1.0 / r1 * (m1 - m2);
        var d11 = 1.0 / r0 * (m0 - m2);
        if (Config.SolverType == DpmSolverType.Midpoint) return DpmSolverUpdates.TaylorUpdate(Config.AlgorithmType, step, x, m2, d11, null, null);
        var d1 = (r0 * d10 - r1 * d11) / (r0 - r1);
        var d2 = 2.0 * (d11 - d10) / (r0 - r1);
        return DpmSolverUpdates.TaylorUpdate(Config.AlgorithmType, step, x, m2, d1, d2, null);
    }

    /// <summary>diffusers' DPM-Solver copy of index_for_timestep falls back to the last index.</summary>
    protected override int IndexWhenAbsent(double timestep) => Timesteps.Count - 1;

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseVp(original, noise, timesteps, sigmas);
}
