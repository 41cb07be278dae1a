using System.Text.Json.Nodes;
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
/// DPMSolver2SAncestralScheduler ("DPM++ 2S a"): diffusers has no such class, so there is no golden; the scheduler is checked
/// against a float64 transcription of k-diffusion's sample_dpmpp_2s_ancestral with injected noise, and for its layout
/// (two calls per step, interleaved midpoint timesteps) and reproducibility.
/// </summary>
public sealed class DPMSolver2SAncestralSchedulerTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    private static Tensor Model(Tensor input, double t, Tensor e) => 0.1 * input + (1 + t / 1000) * e;

    private static DPMSolver2SAncestralScheduler Create(bool karras) =>
        (DPMSolver2SAncestralScheduler)SchedulerFactory.Create(SchedulerConfig.Parse(
            $$"""{ "_class_name": "DPMSolver2SAncestralScheduler", "beta_schedule": "scaled_linear", "use_karras_sigmas": {{(karras ? "true" : "false")}} }"""));

    // make_dpmpp_2s_a_reference.py: k-diffusion's sample_dpmpp_2s_ancestral in float64 around the same synthetic ε model,
    // noise-sampler call k returning sin(2.1 k + 0.9 j + 0.3) · 1.2; float32 sigmas here: atol 1e-4, rtol 1e-4
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void MatchesTheTranscribedKDiffusionLoopWithInjectedNoise(int index)
    {
        using var scope = DisposeScope.Enter();
        var c = JsonNode.Parse(File.ReadAllText(SharedData.Fixture("pipeline/reference/dpmpp_2s_a_reference.json")))!.AsArray()[index]!;
        double[] Doubles(JsonNode? node) => node!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        using var scheduler = Create(c["karras"]!.GetValue<bool>());
        int steps = c["steps"]!.GetValue<int>();
        scheduler.SetTimesteps(steps);
        // the model's timesteps: σ_i's, each interval's midpoint σ(s)'s between them (float32 σ → t here: 2e-3)
        TensorAssert.Close(scheduler.Timesteps, Doubles(c["timesteps"]), 2e-3, 0, "timesteps");
        var distinct = scheduler.Sigmas.Where((_, k) => k == 0 || k % 2 == 1).Take(steps + 1).Select(v => (double)v).ToArray();
        TensorAssert.Close(distinct, Doubles(c["sigmas"]), 0, 1e-4, "sigmas");

        var calls = c["noise_calls"]!.AsArray();
        Assert.Equal(steps - 1, calls.Count); // one draw per step but the last (σ_{i+1} = 0)
        var noise = new QueueNoise(Enumerable.Range(0, calls.Count).Select(PseudoNoise).ToList());
        long[] shape = [1, 2, 2, 2];
        var e = Tensor.From(Doubles(c["E"]).Select(v => (float)v).ToArray(), shape);
        var x = Tensor.From(Doubles(c["x_T"]).Select(v => (float)v).ToArray(), shape) * scheduler.InitNoiseSigma;
        var samples = c["samples"]!.AsArray();
        Assert.Equal(samples.Count, scheduler.Timesteps.Count);
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            x = scheduler.Step(Model(scheduler.ScaleModelInput(x, t), t, e), t, x, noise).PrevSample;
            TensorAssert.Close(x, Doubles(samples[i]), shape, 1e-4, 1e-4, $"call {i}");
        }
        Assert.Equal(0, noise.Remaining);
    }

    /// <summary>The reference's pseudo-noise: call k gets sin(2.1 k + 0.9 j + 0.3) · 1.2 for element j.</summary>
    private static Tensor PseudoNoise(int k) =>
        Tensor.From(Enumerable.Range(0, 8).Select(j => (float)(Math.Sin(2.1 * k + 0.9 * j + 0.3) * 1.2)).ToArray(), 1, 2, 2, 2);

    [Theory]
    [InlineData("dpmpp_2s_a")]
    [InlineData("dpmpp_2s_a_karras")]
    public void MidpointTimestepsInterleaveAndSitAtTheNextSigma(string name)
    {
        using var scheduler = (DPMSolver2SAncestralScheduler)SchedulerFactory.Create(name, Sd15);
        scheduler.SetTimesteps(10);
        Assert.Equal(2, scheduler.Order);
        Assert.Equal(19, scheduler.Timesteps.Count);
        Assert.Equal(10, StepProgress.Steps(scheduler.Timesteps.Count, scheduler.Order));
        Assert.Equal(22, scheduler.Sigmas.Count);
        for (int k = 1; k < 10; k++)
        {
            // [t_0, t(s_0), t_1, t(s_1), t_2, …]: each midpoint after its interval's start
            Assert.True(scheduler.Timesteps[2 * k - 1] < scheduler.Timesteps[2 * k - 2], $"{name}: midpoint {k} after its start");
            // with η = 1, σ_down = σ_{i+1}²/σ_i, so σ(s) = √(σ_i σ_down) = σ_{i+1}: the midpoint's timestep is the interval end's
            Assert.Equal(scheduler.Sigmas[2 * k - 1], scheduler.SigmasMid[k - 1], 1e-4 * scheduler.Sigmas[2 * k - 1]);
            Assert.Equal(scheduler.Timesteps[2 * k], scheduler.Timesteps[2 * k - 1], 0.02);
        }
        Assert.Equal(0, scheduler.SigmasMid[^1]); // the last interval, down to 0, is one Euler call
    }

    [Fact]
    public void TheFirstCallGoesToTheMidpointAndTheSecondFromTheIntervalsStart()
    {
        using var scope = DisposeScope.Enter();
        using var scheduler = (DPMSolver2SAncestralScheduler)SchedulerFactory.Create("dpmpp_2s_a", Sd15);
        scheduler.SetTimesteps(4);
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(2)) * scheduler.InitNoiseSigma;
        var z = Tensors.Randn([1, 4, 4, 4], new Generator(3));
        double sigma = scheduler.Sigmas[0], next = scheduler.Sigmas[1];
        double up = Math.Min(next, Math.Sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma)));
        double down = Math.Sqrt(next * next - up * up), mid = Math.Sqrt(sigma * down);

        double t0 = scheduler.Timesteps[0], t1 = scheduler.Timesteps[1];
        var denoised = x - sigma * Model(x / Math.Sqrt(sigma * sigma + 1), t0, e);
        var x2 = scheduler.Step(Model(scheduler.ScaleModelInput(x, t0), t0, e), t0, x, new QueueNoise()).PrevSample;
        // x₂ = (σ(s)/σ) x − expm1(−h/2) x̂₀, h = log(σ/σ_down)
        double h = Math.Log(sigma / down);
        TensorAssert.Close(x2, mid / sigma * x - (Math.Exp(-h / 2) - 1) * denoised, 1e-4, 1e-5, "x₂");
        Assert.False(scheduler.StateInFirstOrder);

        TensorAssert.Close(scheduler.ScaleModelInput(x2, t1), x2 / Math.Sqrt(mid * mid + 1), 1e-6, 1e-6, "c_in at σ(s)");
        var denoised2 = x2 - mid * Model(x2 / Math.Sqrt(mid * mid + 1), t1, e);
        var noise = new QueueNoise(z);
        var result = scheduler.Step(Model(scheduler.ScaleModelInput(x2, t1), t1, e), t1, x2, noise).PrevSample;
        // x = (σ_down/σ) x − expm1(−h) x̂₀(x₂, σ(s)) + σ_up z: one draw
        TensorAssert.Close(result, down / sigma * x - (Math.Exp(-h) - 1) * denoised2 + up * z, 1e-4, 1e-5, "x");
        Assert.Equal(0, noise.Remaining);
        Assert.True(scheduler.StateInFirstOrder);
    }

    [Theory]
    [InlineData("dpmpp_2s_a")]
    [InlineData("dpmpp_2s_a_karras")]
    public void ASeedReproducesTheRunAndDrawsOncePerStepButTheLast(string name)
    {
        using var scope = DisposeScope.Enter();
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(2));

        Tensor Run(INoiseSource noise)
        {
            using var scheduler = SchedulerFactory.Create(name, Sd15);
            scheduler.SetTimesteps(6);
            var sample = x * scheduler.InitNoiseSigma;
            foreach (var t in scheduler.Timesteps) sample = scheduler.Step(Model(scheduler.ScaleModelInput(sample, t), t, e), t, sample, noise).PrevSample;
            return sample;
        }

        Tensor Seeded(ulong seed)
        {
            using var noise = new GeneratorNoise(seed);
            return Run(noise);
        }

        var a = Seeded(7);
        Assert.True(a.Equal(Seeded(7)));
        Assert.False(a.Equal(Seeded(8)));
        // the seed's draws in order: 5 for 6 steps, the same numbers as the generator's
        using var generator = new Generator(7);
        var queue = new QueueNoise(Enumerable.Range(0, 5).Select(_ => Tensors.Randn([1, 4, 4, 4], generator)).ToList());
        Assert.True(a.Equal(Run(queue)));
        Assert.Equal(0, queue.Remaining);
    }
}

/// <summary>"DPM++ 2S a" in the pipeline on the tiny model: two U-Net calls per step, progress in steps, a seed reproduces.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class DPMSolver2SAncestralPipelineTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Theory]
    [InlineData("dpmpp_2s_a", "Uniform")]
    [InlineData("dpmpp_2s_a_karras", "Karras")]
    public void TextToImageRunsAndASeedReproduces(string sampler, string schedule)
    {
        using var pipe = tiny.Load();
        var progress = new List<GenerationProgress>();
        var request = new GenerationRequest { Prompt = "x", Steps = 3, Seed = 5, Sampler = sampler };
        using var a = pipe.TextToImage(request, new SyncProgress(progress.Add));
        using var b = pipe.TextToImage(request);
        using var c = pipe.TextToImage(request with { Seed = 6 });
        Assert.Equal([1, 2, 3], progress.Select(p => p.Step));
        Assert.True(a.Latents.Equal(b.Latents));
        Assert.False(a.Latents.Equal(c.Latents));
        Assert.Equal(0, a.Latents.IsFinite().LogicalNot().Sum().Item());
        Assert.Equal(("DPM++ 2S a", schedule), (a.Parameters[0].Sampler, a.Parameters[0].ScheduleType));
    }
}
