using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// DPMSolverSDEScheduler ("DPM++ SDE") and its Brownian tree. No golden can match diffusers here (its noise comes
/// from torchsde), so the tree is checked for what a Brownian motion must be, and the scheduler for reproducibility.
/// </summary>
public sealed class DPMSolverSDESchedulerTests
{
    private static DPMSolverSDEScheduler Create(string options = "") =>
        (DPMSolverSDEScheduler)SchedulerFactory.Create(SchedulerConfig.Parse(
            $$"""{ "_class_name": "DPMSolverSDEScheduler", "beta_schedule": "scaled_linear" {{options}} }"""));

    private static double[] Increment(BrownianTree tree, double a, double b)
    {
        using var scope = DisposeScope.Enter();
        return tree.Increment(a, b).ToArray<double>();
    }

    [Fact]
    public void TheSameSeedGivesTheSamePathWhateverIsAskedFirst()
    {
        var a = new BrownianTree([64], 0.03, 14.6, 42);
        var b = new BrownianTree([64], 0.03, 14.6, 42);
        var first = Increment(a, 1.0, 2.5);
        Increment(b, 0.2, 7.0); // other queries first: values depend on t only
        Increment(b, 3.3, 3.4);
        Assert.Equal(first, Increment(b, 1.0, 2.5));
        Assert.NotEqual(first, Increment(new BrownianTree([64], 0.03, 14.6, 43), 1.0, 2.5));
    }

    [Fact]
    public void IncrementsAddUpAlongThePath()
    {
        var tree = new BrownianTree([16], 0.03, 14.6, 7);
        var whole = Increment(tree, 0.5, 9.0);
        var parts = Increment(tree, 0.5, 2.0).Zip(Increment(tree, 2.0, 9.0), (x, y) => x + y).ToArray();
        for (int i = 0; i < whole.Length; i++) Assert.Equal(whole[i], parts[i], 12);
    }

    // W(b) − W(a) ~ N(0, |b − a|) and disjoint increments are independent: 20,000 independent paths (one per element);
    // the sample variance's standard error is √(2/n) ≈ 1 %, so 5 % (plus the tree's tolerance) is a safe bound, and
    // correlations are within 0.05
    [Theory]
    [InlineData(0.03, 14.6)]
    [InlineData(1.0, 2.5)]
    [InlineData(0.0291, 0.0333)]
    [InlineData(7.3, 7.30001)]
    [InlineData(3.14159, 11.0)]
    public void IncrementsHaveTheVarianceOfBrownianMotion(double a, double b)
    {
        const int n = 20_000;
        var tree = new BrownianTree([n], 0.0291, 14.6, 2024);
        var d = Increment(tree, a, b);
        double mean = d.Average(), variance = d.Select(v => (v - mean) * (v - mean)).Sum() / (n - 1);
        // linear interpolation inside the tree's leaves (shorter than its tolerance) loses at most a tolerance of variance
        Assert.InRange(variance, 0.95 * (b - a) - tree.Tolerance, 1.05 * (b - a));
        Assert.InRange(mean / Math.Sqrt(b - a), -0.03, 0.03);

        // an increment after b is uncorrelated with this one
        double c = Math.Min(b + 1.0, 14.6);
        if (c > b)
        {
            var e = Increment(tree, b, c);
            double cov = d.Zip(e, (x, y) => x * y).Average() - mean * e.Average();
            Assert.InRange(cov / Math.Sqrt((b - a) * (c - b)), -0.05, 0.05);
        }
    }

    [Fact]
    public void TheSamplerNormalisesAndSignsTheIncrement()
    {
        using var scope = DisposeScope.Enter();
        var sampler = new BrownianTreeNoiseSampler([1, 4, 8, 8], 0.03, 14.6, [5], DType.Float32, Device.CPU);
        var tree = new BrownianTree([1, 4, 8, 8], 0.03, 14.6, 5);
        // (W(σ_next) − W(σ)) / √|σ − σ_next|, the same whichever way the step goes
        var down = sampler.Next(4.0, 1.0);
        var expected = Increment(tree, 4.0, 1.0).Select(v => (float)(v / Math.Sqrt(3.0))).ToArray();
        Assert.Equal(expected, down.ToArray<float>());
        Assert.Equal(down.Neg().ToArray<float>(), sampler.Next(1.0, 4.0).ToArray<float>());
    }

    private static Tensor Run(INoiseSource noise, int batch = 1, string options = "", int steps = 6)
    {
        using var scheduler = Create(options);
        scheduler.SetTimesteps(steps);
        var e = Tensors.Randn([1, 4, 8, 8], new Generator(1)).Expand([batch, 4, 8, 8]);
        var x = noise.Next([batch, 4, 8, 8], DType.Float32, Device.CPU) * scheduler.InitNoiseSigma;
        foreach (var t in scheduler.Timesteps)
            x = scheduler.Step(0.1 * scheduler.ScaleModelInput(x, t) + (1 + t / 1000) * e, t, x, noise).PrevSample;
        return x;
    }

    [Fact]
    public void ASeedReproducesAndAnotherSeedDiffers()
    {
        using var scope = DisposeScope.Enter();
        var a = Run(new GeneratorNoise(11));
        Assert.Equal(0, a.IsFinite().LogicalNot().Sum().Item());
        Assert.Equal(0, (a - Run(new GeneratorNoise(11))).Abs().Max().Item());
        Assert.True((a - Run(new GeneratorNoise(12))).Abs().Max().Item() > 1e-3);
        // noise_sampler_seed fixes the tree whatever the pipeline's seed (the initial noise still differs)
        var seeded = Run(new GeneratorNoise(11), options: """, "noise_sampler_seed": 3 """);
        Assert.True((a - seeded).Abs().Max().Item() > 1e-3);
        Assert.Equal(0, (seeded - Run(new GeneratorNoise(11), options: """, "noise_sampler_seed": 3 """)).Abs().Max().Item());
    }

    [Fact]
    public void EachImageOfABatchHasItsOwnTreeAndEqualsItsSingleImageRun()
    {
        using var scope = DisposeScope.Enter();
        using var batchNoise = BatchNoise.FromSeed(20, 2);
        var batch = Run(batchNoise, batch: 2, options: """, "use_karras_sigmas": true """);
        for (int i = 0; i < 2; i++)
        {
            using var single = new GeneratorNoise(20 + (ulong)i);
            var one = Run(single, options: """, "use_karras_sigmas": true """);
            Assert.True((batch.Slice(0, i, i + 1) - one).Abs().Max().Item() < 1e-6, $"image {i}");
        }
    }

    [Fact]
    public void TheScheduleInterleavesMidpointsAndTheStepsWalkIt()
    {
        using var scope = DisposeScope.Enter();
        using var scheduler = Create();
        scheduler.SetTimesteps(4);
        Assert.Equal(2, scheduler.Order);
        // [t0, m0, t1, m1, t2, m2, t3] with linspace t = 999, 666, 333, 0; sigmas [σ0, σ1, σ1, σ2, σ2, σ3, σ3, 0]
        Assert.Equal(7, scheduler.Timesteps.Count);
        Assert.Equal([999.0, 666.0, 333.0, 0.0], scheduler.Timesteps.Where((_, k) => k % 2 == 0));
        for (int k = 1; k < 7; k += 2) Assert.InRange(scheduler.Timesteps[k], scheduler.Timesteps[k + 1], scheduler.Timesteps[k - 1]);
        var s = scheduler.Sigmas;
        Assert.Equal(8, s.Count);
        Assert.Equal(s[1], s[2]);
        Assert.Equal(0f, s[^1]);
        Assert.Equal((double)s.Max(), scheduler.InitNoiseSigma, 6);

        // with no noise the second call of an interval is k-diffusion's DPM-Solver++(2S) update from σ_i to σ_{i+1}
        scheduler.NoiseSampler = new ZeroNoise();
        var x = Tensors.Randn([1, 4, 8, 8], new Generator(3)) * scheduler.InitNoiseSigma;
        var e = Tensors.Randn([1, 4, 8, 8], new Generator(4));
        double sigma = s[0], sigmaNext = s[1];
        var eps0 = 0.1 * scheduler.ScaleModelInput(x, scheduler.Timesteps[0]) + e;
        var mid = scheduler.Step(eps0, scheduler.Timesteps[0], x).PrevSample;
        double sigmaMid = Math.Sqrt(sigma * sigmaNext);  // the midpoint in log σ
        var eps1 = 0.1 * scheduler.ScaleModelInput(mid, scheduler.Timesteps[1]) - e;
        Assert.True((scheduler.ScaleModelInput(mid, scheduler.Timesteps[1]) - mid / Math.Sqrt(sigmaMid * sigmaMid + 1)).Abs().Max().Item() < 1e-5);
        var next = scheduler.Step(eps1, scheduler.Timesteps[1], mid).PrevSample;
        // σ_up ≠ 0, but with zero noise: x_next = (σ_down/σ) x − (σ_down/σ − 1) x̂₀(mid), σ_down = √(σ_{i+1}² − σ_up²)
        double up = Math.Min(sigmaNext, Math.Sqrt(sigmaNext * sigmaNext * (sigma * sigma - sigmaNext * sigmaNext) / (sigma * sigma)));
        double down = Math.Sqrt(sigmaNext * sigmaNext - up * up);
        var x0Mid = mid - sigmaMid * eps1;
        var expected = down / sigma * x - (down / sigma - 1) * x0Mid;
        Assert.True((next - expected).Abs().Max().Item() < 1e-4);
    }

    // make_dpmsolver_sde_reference.py: diffusers 0.30.3's schedule and step transcribed in float64, with a fixed
    // pseudo-noise per noise-sampler call in place of torchsde's tree; float32 sigmas here: atol 1e-4, rtol 1e-4
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void MatchesTheTranscribedReferenceWithInjectedNoise(int index)
    {
        using var scope = DisposeScope.Enter();
        var all = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(SharedData.Fixture("pipeline/reference/dpmsolver_sde_reference.json")))!.AsArray();
        var c = all[index]!;
        double[] Doubles(System.Text.Json.Nodes.JsonNode? node) => node!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        using var scheduler = Create($$""", "use_karras_sigmas": {{(c["karras"]!.GetValue<bool>() ? "true" : "false")}} """);
        scheduler.SetTimesteps(c["steps"]!.GetValue<int>());
        TensorAssert.Close(scheduler.Timesteps, Doubles(c["timesteps"]), 2e-3, 0, "timesteps");
        TensorAssert.Close(scheduler.Sigmas.Select(v => (double)v).ToArray(), Doubles(c["sigmas"]), 0, 1e-4, "sigmas"); // float32 ᾱ cumprod here vs float64 there: 1.3e-5 at σ_min

        var calls = c["noise_calls"]!.AsArray();
        var injected = new RecordedNoise(calls.Count);
        scheduler.NoiseSampler = injected;
        long[] shape = [1, 2, 2, 2];
        var e = Tensor.From(Doubles(c["E"]).Select(v => (float)v).ToArray(), shape);
        var x = Tensor.From(Doubles(c["x_T"]).Select(v => (float)v).ToArray(), shape) * scheduler.InitNoiseSigma;
        var samples = c["samples"]!.AsArray();
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            x = scheduler.Step(0.1 * scheduler.ScaleModelInput(x, t) + (1 + t / 1000) * e, t, x).PrevSample;
            TensorAssert.Close(x, Doubles(samples[i]), shape, 1e-4, 1e-4, $"step {i}");
        }
        Assert.Equal(calls.Count, injected.Calls.Count);
        for (int k = 0; k < calls.Count; k++)
            TensorAssert.Close([injected.Calls[k].Sigma, injected.Calls[k].SigmaNext], Doubles(calls[k]), 0, 1e-4, $"noise call {k}");
    }

    /// <summary>The reference's pseudo-noise: call k gets sin(2.1 k + 0.9 j + 0.3) · 1.2 for element j.</summary>
    private sealed class RecordedNoise(int expectedCalls) : ISigmaNoiseSampler
    {
        public List<(double Sigma, double SigmaNext)> Calls { get; } = [];

        public Tensor Next(double sigma, double sigmaNext)
        {
            int k = Calls.Count;
            Assert.True(k < expectedCalls, "more noise calls than the reference made");
            Calls.Add((sigma, sigmaNext));
            return Tensor.From(Enumerable.Range(0, 8).Select(j => (float)(Math.Sin(2.1 * k + 0.9 * j + 0.3) * 1.2)).ToArray(), 1, 2, 2, 2);
        }
    }

    private sealed class ZeroNoise : ISigmaNoiseSampler
    {
        public Tensor Next(double sigma, double sigmaNext) => Tensors.Zeros([1, 4, 8, 8]);
    }
}
