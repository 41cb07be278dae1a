using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Heun, KDPM2 and KDPM2 ancestral beyond their goldens (which cover the uniform schedules): the interleaved
/// timesteps, the Karras variants, the two halves of a step, image-to-image's start at a step boundary.
/// </summary>
public sealed class SecondOrderSchedulerTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    private static Tensor Model(Tensor input, double t, Tensor e) => 0.1 * input + (1 + t / 1000) * e;

    public static TheoryData<string> SecondOrderSamplers() => new() { "heun", "heun_karras", "dpm2", "dpm2_karras", "dpm2_a", "dpm2_a_karras", "dpmpp_2s_a", "dpmpp_2s_a_karras" };

    [Theory]
    [MemberData(nameof(SecondOrderSamplers))]
    public void TimestepsListEveryStepTwiceButTheFirst(string name)
    {
        using var scheduler = SchedulerFactory.Create(name, Sd15);
        scheduler.SetTimesteps(10);
        Assert.Equal(2, scheduler.Order);
        Assert.Equal(19, scheduler.Timesteps.Count);
        Assert.Equal(10, StepProgress.Steps(scheduler.Timesteps.Count, scheduler.Order));
        var sigmas = Assert.IsAssignableFrom<ISigmaSchedule>(scheduler).Sigmas;
        // diffusers' tables: Heun's σ has one entry per call plus the final 0; KDPM2's repeats σ_1 … 0 twice, 0 once more
        Assert.Equal(scheduler is HeunDiscreteScheduler ? 20 : 22, sigmas.Count);
        Assert.Equal(0f, sigmas[^1]);
        if (scheduler is HeunDiscreteScheduler)
        {
            for (int k = 1; k < 10; k++) Assert.Equal(scheduler.Timesteps[2 * k - 1], scheduler.Timesteps[2 * k]);
        }
        else
        {
            // each interval's midpoint timestep follows its start; KDPM2's √(σ_i σ_{i+1}) also precedes its end (the ancestral
            // √(σ_i σ_down) may fall below σ_{i+1})
            for (int k = 1; k < 10; k++)
            {
                Assert.True(scheduler.Timesteps[2 * k - 1] < scheduler.Timesteps[2 * k - 2], $"{name}: midpoint {k} after its start");
                if (scheduler is KDPM2DiscreteScheduler)
                    Assert.True(scheduler.Timesteps[2 * k - 1] > scheduler.Timesteps[2 * k], $"{name}: midpoint {k} before its end");
            }
        }
        Assert.Equal(name.EndsWith("karras", StringComparison.Ordinal) ? DType.Float64 : DType.Float32, scheduler.TimestepDType);
    }

    [Theory]
    [MemberData(nameof(SecondOrderSamplers))]
    public void OneOrTwoStepsEndAtTheDenoisedEstimate(string name)
    {
        using var scope = DisposeScope.Enter();
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        foreach (var n in new[] { 1, 2 })
        {
            using var scheduler = SchedulerFactory.Create(name, Sd15);
            scheduler.SetTimesteps(n);
            Assert.Equal(2 * n - 1, scheduler.Timesteps.Count);
            var sample = Tensors.Randn([1, 4, 4, 4], new Generator(2)) * scheduler.InitNoiseSigma;
            using var noise = new GeneratorNoise(3);
            SchedulerStepOutput? last = null;
            foreach (var t in scheduler.Timesteps)
            {
                last = scheduler.Step(Model(scheduler.ScaleModelInput(sample, t), t, e), t, sample, noise);
                sample = last.PrevSample;
            }
            // the last call is an Euler step down to σ = 0, which lands on its own x̂₀
            TensorAssert.Close(sample, last!.PredOriginalSample!, 1e-5, 1e-5, $"{name}, {n} steps");
        }
    }

    [Theory]
    [InlineData("heun_karras", "heun")]
    [InlineData("dpm2_karras", "dpm2")]
    [InlineData("dpm2_a_karras", "dpm2_a")]
    public void KarrasVariantsWalkKarrasSigmasBetweenTheModelsExtremes(string karras, string uniform)
    {
        const int n = 10;
        using var plain = SchedulerFactory.Create(uniform, Sd15);
        plain.SetTimesteps(n);
        using var scheduler = SchedulerFactory.Create(karras, Sd15);
        scheduler.SetTimesteps(n);
        var uniformSigmas = Distinct(((ISigmaSchedule)plain).Sigmas);
        var sigmas = Distinct(((ISigmaSchedule)scheduler).Sigmas);
        Assert.Equal(n + 1, sigmas.Count);
        double max = uniformSigmas[0], min = uniformSigmas[^2];
        // Karras et al. (2022) eq. 5, ρ = 7, from σ_max to σ_min of the interpolated schedule; then 0
        var expected = Enumerable.Range(0, n)
            .Select(i => Math.Pow(Math.Pow(max, 1 / 7.0) + i / (n - 1.0) * (Math.Pow(min, 1 / 7.0) - Math.Pow(max, 1 / 7.0)), 7))
            .Append(0).ToArray();
        TensorAssert.Close(sigmas.Select(s => (double)s).ToArray(), expected, 1e-5, 1e-5, $"{karras} sigmas");
        // KDPM2 rounds the Karras timesteps (the midpoints' stay fractional); Heun keeps them fractional
        var steps = scheduler.Timesteps.Where((_, i) => i % 2 == 0).ToArray();
        Assert.Equal(scheduler is not HeunDiscreteScheduler, steps.All(t => t == Math.Round(t)));
    }

    private static List<float> Distinct(IReadOnlyList<float> values)
    {
        var result = new List<float>();
        foreach (var v in values) if (result.Count == 0 || result[^1] != v) result.Add(v);
        return result;
    }

    [Fact]
    public void HeunsFirstHalfIsAnEulerStepAndItsSecondAveragesTheSlopes()
    {
        using var scope = DisposeScope.Enter();
        using var heun = (HeunDiscreteScheduler)SchedulerFactory.Create("heun", Sd15);
        using var euler = SchedulerFactory.Create("euler", Sd15);
        heun.SetTimesteps(4);
        euler.SetTimesteps(4);
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(2)) * heun.InitNoiseSigma;
        double t0 = heun.Timesteps[0];
        Assert.Equal(euler.Timesteps[0], t0, 1e-3);

        var predicted = heun.Step(Model(heun.ScaleModelInput(x, t0), t0, e), t0, x).PrevSample;
        var eulerStep = euler.Step(Model(euler.ScaleModelInput(x, t0), t0, e), t0, x).PrevSample;
        TensorAssert.Close(predicted, eulerStep, 1e-5, 1e-5, "predictor");
        Assert.False(heun.StateInFirstOrder);

        // x' = x + (d(x, σ0) + d(x̃, σ1))/2 · (σ1 − σ0), d = (x − x̂₀)/σ = ε for an ε-model
        double t1 = heun.Timesteps[1];
        double s0 = heun.Sigmas[0], s1 = heun.Sigmas[1];
        var eps0 = Model(x / Math.Sqrt(s0 * s0 + 1), t0, e);
        var eps1 = Model(predicted / Math.Sqrt(s1 * s1 + 1), t1, e);
        var corrected = heun.Step(Model(heun.ScaleModelInput(predicted, t1), t1, e), t1, predicted).PrevSample;
        TensorAssert.Close(corrected, x + (eps0 + eps1) / 2 * (s1 - s0), 1e-5, 1e-5, "corrector");
        Assert.True(heun.StateInFirstOrder);
    }

    [Fact]
    public void KDpm2AncestralDrawsInEveryCallButAddsNoiseOnlyInTheSecond()
    {
        using var scope = DisposeScope.Enter();
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(2));
        var draws = Enumerable.Range(0, 19).Select(i => Tensors.Randn([1, 4, 4, 4], new Generator(10 + (ulong)i))).ToList();

        Tensor Run(IReadOnlyList<Tensor> noiseTensors)
        {
            using var scheduler = SchedulerFactory.Create("dpm2_a", Sd15);
            scheduler.SetTimesteps(10);
            var noise = new QueueNoise(noiseTensors);
            var sample = x * scheduler.InitNoiseSigma;
            foreach (var t in scheduler.Timesteps) sample = scheduler.Step(Model(scheduler.ScaleModelInput(sample, t), t, e), t, sample, noise).PrevSample;
            Assert.Equal(0, noise.Remaining);
            return sample;
        }

        var withDraws = Run(draws);
        // the first calls' draws (even indices) are discarded, as in diffusers
        var firstHalvesChanged = draws.Select((d, i) => i % 2 == 0 ? d * 100 : d).ToList();
        Assert.True(withDraws.Equal(Run(firstHalvesChanged)));
        var secondHalvesChanged = draws.Select((d, i) => i % 2 == 1 ? d * 2 : d).ToList();
        Assert.False(withDraws.Equal(Run(secondHalvesChanged)));
    }

    [Theory]
    [MemberData(nameof(SecondOrderSamplers))]
    public void ImageToImageStartsAtAStepBoundary(string name)
    {
        // diffusers' img2img: t_start = 4 of 10 steps → timesteps[t_start·order:], set_begin_index(t_start·order)
        using var scope = DisposeScope.Enter();
        using var full = SchedulerFactory.Create(name, Sd15);
        full.SetTimesteps(10);
        using var scheduler = SchedulerFactory.Create(name, Sd15);
        scheduler.SetTimesteps(10);
        const int tStart = 4;
        int begin = tStart * scheduler.Order;
        scheduler.SetBeginIndex(begin);
        var sigmas = ((ISigmaSchedule)scheduler).Sigmas;
        var original = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var noise = Tensors.Randn([1, 4, 4, 4], new Generator(2));
        using var t = scheduler.TimestepsTensor().Narrow(0, begin, 1);
        var sample = scheduler.AddNoise(original, noise, t);
        // σ at the begin index is σ_4 of the schedule: the start of the fifth interval
        Assert.Equal(Distinct(sigmas)[tStart], sigmas[begin]);
        TensorAssert.Close(sample, original + noise * (double)sigmas[begin], 1e-6, 0, "noisy");

        var timesteps = scheduler.Timesteps.Skip(begin).ToList();
        Assert.Equal(2 * (10 - tStart) - 1, timesteps.Count);
        Assert.Equal(10 - tStart, StepProgress.Steps(timesteps.Count, scheduler.Order));
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(3));
        using var source = new GeneratorNoise(4);
        foreach (var step in timesteps) sample = scheduler.Step(Model(scheduler.ScaleModelInput(sample, step), step, e), step, sample, source).PrevSample;
        Assert.True(sample.IsFinite().LogicalNot().Sum().Item() == 0, $"{name}: non-finite sample");
    }
}

/// <summary>The pipeline's loop with a second-order sampler: two U-Net calls per step, progress in steps.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class SecondOrderPipelineTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Fact]
    public void TextToImageReportsStepsNotModelCalls()
    {
        using var pipe = tiny.Load();
        var progress = new List<GenerationProgress>();
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 3, Seed = 1, Sampler = "heun" }, new SyncProgress(progress.Add));
        // 5 U-Net calls (t0, t1, t1, t2, t2), reported as steps 1, 2, 3 of 3
        Assert.Equal([1, 2, 3], progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(3, p.TotalSteps));
        Assert.Equal(("Heun", "Uniform"), (result.Parameters[0].Sampler, result.Parameters[0].ScheduleType));
    }

    [Fact]
    public void ImageToImageStartsAtTStartTimesTheOrder()
    {
        using var pipe = tiny.Load();
        var progress = new List<GenerationProgress>();
        var init = RgbImage.Filled(64, 64, new Rgb(200, 40, 40));
        using var result = pipe.ImageToImage(
            new ImageToImageRequest { Prompt = "x", InitImage = init, Strength = 0.6, Steps = 5, Seed = 1, Sampler = "dpm2_a_karras" },
            new SyncProgress(progress.Add));
        // ⌊5 × 0.6⌋ = 3 steps from timesteps[2 · 2]: 5 calls
        Assert.Equal([1, 2, 3], progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(3, p.TotalSteps));
        Assert.Equal(("DPM2 a", "Karras"), (result.Parameters[0].Sampler, result.Parameters[0].ScheduleType));
    }
}
