using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' PNDMScheduler config and defaults.</summary>
public sealed record PNDMSchedulerConfig : SchedulerConfig
{
    [JsonIgnore] public override string ClassName => "PNDMScheduler";

    /// <summary>Skip the Runge–Kutta warm-up and run pure PLMS (Stable Diffusion's setting).</summary>
    [JsonPropertyName("skip_prk_steps")] public bool SkipPrkSteps { get; init; }
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// Pseudo Numerical methods for Diffusion Models (Liu et al. 2022): a linear multistep (PLMS) method
/// on the DDIM transfer function, warmed up either with pseudo Runge–Kutta steps (PRK) or, with
/// skip_prk_steps, by the repeated-timestep trick (the second timestep appears twice). The step
/// counter, the repeated timestep and the history of model outputs follow diffusers exactly.
/// </summary>
public sealed class PNDMScheduler : Scheduler
{
    private const int PndmOrder = 4;
    private readonly List<Tensor> ets = new();   // past model outputs, newest last (owned)
    private Tensor? curSample;                    // x_t kept across the warm-up steps (owned)
    private Tensor? curModelOutput;               // PRK's running weighted sum (owned)
    private long[] prkTimesteps = [];
    private int counter;

    public PNDMScheduler(PNDMSchedulerConfig? config = null) : base(config ?? new PNDMSchedulerConfig()) { }

    public override PNDMSchedulerConfig Config => (PNDMSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    private double FinalAlphaCumprod => Config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];

    private int StepRatio => Config.NumTrainTimesteps / NumInferenceSteps;

    protected override double[] ComputeTimesteps(int steps)
    {
        int trainSteps = Config.NumTrainTimesteps;
        // the base schedule, ascending
        long[] baseTimesteps = Config.TimestepSpacing switch
        {
            TimestepSpacing.Linspace => ScheduleMath.Linspace(0, trainSteps - 1, steps).Select(v => (long)ScheduleMath.Round(v)).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, steps).Select(i => (long)i * (trainSteps / steps) + Config.StepsOffset).ToArray(),
            _ => ScheduleMath.SpacedTimesteps(TimestepSpacing.Trailing, trainSteps, steps, 0).Reverse().Select(v => (long)v).ToArray(),
        };
        int n = baseTimesteps.Length;
        long[] plms;
        if (Config.SkipPrkSteps)
        {
            // [t_0 … t_{n−2}, t_{n−2}, t_{n−1}] reversed: the second timestep is repeated
            prkTimesteps = [];
            plms = baseTimesteps[..^1].Concat(baseTimesteps[Math.Max(0, n - 2)..^1]).Concat(baseTimesteps[^1..]).Reverse().ToArray();
        }
        else
        {
            // the last 4 base timesteps, each followed by its half-step: t, t + T/n/2; repeated as the
            // RK stages need (diffusers' repeat/tile construction), reversed
            long half = trainSteps / steps / 2;
            var pairs = baseTimesteps[Math.Max(0, n - PndmOrder)..].SelectMany(t => new[] { t, t + half }).ToArray();
            var repeated = pairs[..^1].SelectMany(t => new[] { t, t }).ToArray();
            prkTimesteps = repeated[1..^1].Reverse().ToArray();
            plms = baseTimesteps[..Math.Max(0, n - 3)].Reverse().ToArray();
        }
        counter = 0;
        return prkTimesteps.Concat(plms).Select(t => (double)t).ToArray();
    }

    protected override void ResetHistory()
    {
        foreach (var e in ets) e.Dispose();
        ets.Clear();
        curSample?.Dispose();
        curSample = null;
        curModelOutput?.Dispose();
        curModelOutput = null;
        counter = 0;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        long t = TrainingIndex(timestep);
        var prev = counter < prkTimesteps.Length && !Config.SkipPrkSteps
            ? StepPrk(modelOutput, t, sample)
            : StepPlms(modelOutput, t, sample);
        return new SchedulerStepOutput(prev, null);
    }

    /// <summary>Pseudo fourth-order Runge–Kutta: four model evaluations per step, weights 1/6, 1/3, 1/3, 1/6.</summary>
    private Tensor StepPrk(Tensor modelOutput, long timestep, Tensor sample)
    {
        using var scope = DisposeScope.Enter();
        long diffToPrev = counter % 2 == 1 ? 0 : StepRatio / 2;
        long prevTimestep = timestep - diffToPrev;
        long t = prkTimesteps[counter / 4 * 4];

        switch (counter % 4)
        {
            case 0:
                Accumulate(modelOutput, 1.0 / 6);
                ets.Add(Own(modelOutput.Alias()));
                Replace(ref curSample, sample.Alias());
                break;
            case 1:
            case 2:
                Accumulate(modelOutput, 1.0 / 3);
                break;
            default:
                modelOutput = curModelOutput! + 1.0 / 6 * modelOutput;
                curModelOutput!.Dispose();
                curModelOutput = null;
                break;
        }
        var prev = PrevSample(curSample ?? sample, t, prevTimestep, modelOutput);
        counter++;
        return scope.Keep(prev);
    }

    private void Accumulate(Tensor modelOutput, double weight)
    {
        var term = weight * modelOutput;
        Replace(ref curModelOutput, curModelOutput is null ? term : curModelOutput + term);
    }

    /// <summary>
    /// Linear multistep: ε′ from the last 1–4 model outputs with Adams–Bashforth weights; the first two
    /// calls (counter 0 and 1) are the warm-up that evaluates the model twice at the same timestep.
    /// </summary>
    private Tensor StepPlms(Tensor modelOutput, long timestep, Tensor sample)
    {
        if (!Config.SkipPrkSteps && ets.Count < 3)
            throw new InvalidOperationException("PNDMScheduler: PLMS steps need at least 12 PRK steps first");
        using var scope = DisposeScope.Enter();
        long prevTimestep = timestep - StepRatio;
        if (counter != 1)
        {
            while (ets.Count > 3) { ets[0].Dispose(); ets.RemoveAt(0); }
            ets.Add(Own(modelOutput.Alias()));
        }
        else
        {
            // the repeated timestep: the second evaluation is at t − T/n, the update again from t
            prevTimestep = timestep;
            timestep += StepRatio;
        }

        Tensor e;
        if (ets.Count == 1 && counter == 0)
        {
            e = modelOutput;
            Replace(ref curSample, sample.Alias());
        }
        else if (ets.Count == 1 && counter == 1)
        {
            // second-order warm-up: average of the two evaluations, stepping from the stored x_t
            e = (modelOutput + ets[^1]) / 2;
            sample = curSample!;
        }
        else if (ets.Count == 2)
        {
            e = (3 * ets[^1] - ets[^2]) / 2;
        }
        else if (ets.Count == 3)
        {
            e = (23 * ets[^1] - 16 * ets[^2] + 5 * ets[^3]) / 12;
        }
        else
        {
            e = 1.0 / 24 * (55 * ets[^1] - 59 * ets[^2] + 37 * ets[^3] - 9 * ets[^4]);
        }
        var prev = PrevSample(sample, timestep, prevTimestep, e);
        if (ets.Count == 1 && counter == 1)
        {
            curSample!.Dispose();
            curSample = null;
        }
        counter++;
        return scope.Keep(prev);
    }

    /// <summary>
    /// PNDM eq. 11, the transfer from x_t to x_{t−δ} given ε:
    /// x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t) x_t − (ᾱ_{t−δ} − ᾱ_t) ε / (ᾱ_t √(1 − ᾱ_{t−δ}) + √(ᾱ_t (1 − ᾱ_t) ᾱ_{t−δ})).
    /// </summary>
    private Tensor PrevSample(Tensor sample, long timestep, long prevTimestep, Tensor modelOutput)
    {
        double alphaProdT = AlphasCumprod[timestep];
        double alphaProdPrev = prevTimestep >= 0 ? AlphasCumprod[prevTimestep] : FinalAlphaCumprod;
        double betaProdT = 1 - alphaProdT, betaProdPrev = 1 - alphaProdPrev;
        if (Config.PredictionType == PredictionType.VPrediction)
            modelOutput = Math.Sqrt(alphaProdT) * modelOutput + Math.Sqrt(betaProdT) * sample;
        double sampleCoeff = Math.Sqrt(alphaProdPrev / alphaProdT);
        double denominator = alphaProdT * Math.Sqrt(betaProdPrev) + Math.Sqrt(alphaProdT * betaProdT * alphaProdPrev);
        return sampleCoeff * sample - (alphaProdPrev - alphaProdT) / denominator * modelOutput;
    }

    /// <summary>Takes a tensor out of every dispose scope: the scheduler frees it.</summary>
    private static Tensor Own(Tensor t) => t.DetachFromDisposeScope();

    private static void Replace(ref Tensor? slot, Tensor value)
    {
        slot?.Dispose();
        slot = Own(value);
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);
}
