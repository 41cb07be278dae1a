using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

public sealed class SchedulerBehaviourTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    public static TheoryData<string> SamplerNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in SchedulerFactory.SamplerNames) data.Add(name);
        return data;
    }

    /// <summary>A synthetic ε-model: the loop of the goldens.</summary>
    private static Tensor Model(Tensor input, double t, Tensor e) => 0.1 * input + (1 + t / 1000) * e;

    [Fact]
    public void DdpmPipelineSchedulerPathMatchesTheGolden()
    {
        // check #11 without the UNet: the golden's recorded UNet outputs drive DDPM (fixed_large,
        // clip_sample) from noise.000 with variance noise noise.001…009; every UNet input and the image match
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(Golden("ddpm_pipeline"));
        using var scheduler = SchedulerFactory.Load(SharedData.Fixture("pipeline/ddpm_tiny/scheduler/scheduler_config.json"));
        scheduler.SetTimesteps(10);
        var noise = new QueueNoise(Enumerable.Range(1, 9).Select(i => golden.Load($"noise.{i:D3}")).ToList());
        var sample = golden.Load("noise.000") * scheduler.InitNoiseSigma;
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            var input = scheduler.ScaleModelInput(sample, t);
            TensorAssert.Close(input, golden.Load($"debug.unet{i:D2}.input_sample"), 1e-4, 1e-4, $"unet{i:D2} input");
            sample = scheduler.Step(golden.Load($"debug.unet{i:D2}.output"), t, sample, noise).PrevSample;
        }
        Assert.Equal(9, noise.Drawn);
        var image = (sample / 2 + 0.5).Clamp(0, 1).Permute(0, 2, 3, 1);
        TensorAssert.Close(image, golden.Load("output.image_np"), 1e-4, 1e-4, "output.image_np");
    }

    [Theory]
    [MemberData(nameof(SamplerNames))]
    public void KeepsTheCallersDtypeAndProducesFiniteSamples(string name)
    {
        using var scope = DisposeScope.Enter();
        using var scheduler = SchedulerFactory.Create(name, Sd15);
        scheduler.SetTimesteps(name == "lcm" ? 4 : 8);
        using var noise = new GeneratorNoise(3);
        var e = Tensors.Randn([2, 4, 4, 4], new Generator(1), DType.Float64);
        var sample = Tensors.Randn([2, 4, 4, 4], new Generator(2), DType.Float64) * scheduler.InitNoiseSigma;
        foreach (var t in scheduler.Timesteps)
        {
            var input = scheduler.ScaleModelInput(sample, t);
            Assert.Equal(DType.Float64, input.DType);
            var result = scheduler.Step(Model(input, t, e), t, sample, noise);
            Assert.Equal(DType.Float64, result.PrevSample.DType);
            sample = result.PrevSample;
        }
        Assert.True(sample.IsFinite().LogicalNot().Sum().Item() == 0, $"{name}: non-finite sample");
    }

    [Theory]
    [InlineData("pndm")]
    [InlineData("dpmpp_2m")]
    [InlineData("lms")]
    [InlineData("euler_a")]
    [InlineData("heun")]   // stopped after an odd number of calls: the predictor's state is pending
    [InlineData("dpm2_a")]
    public void SetTimestepsResetsTheMultistepHistory(string name)
    {
        using var scope = DisposeScope.Enter();
        var e = Tensors.Randn([1, 4, 4, 4], new Generator(5));
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(6));

        Tensor Run(IScheduler scheduler, int stopAfter)
        {
            scheduler.SetTimesteps(10);
            using var noise = new GeneratorNoise(9);
            var sample = x * scheduler.InitNoiseSigma;
            int i = 0;
            foreach (var t in scheduler.Timesteps)
            {
                if (i++ == stopAfter) break;
                sample = scheduler.Step(Model(scheduler.ScaleModelInput(sample, t), t, e), t, sample, noise).PrevSample;
            }
            return sample;
        }

        using var reused = SchedulerFactory.Create(name, Sd15);
        Run(reused, 3);
        var again = Run(reused, int.MaxValue);
        using var fresh = SchedulerFactory.Create(name, Sd15);
        Assert.True(again.Equal(Run(fresh, int.MaxValue)));
    }

    [Fact]
    public void ImageToImageStartsAtTheBeginIndex()
    {
        // diffusers' img2img: t_start = steps − steps·strength; set_begin_index(t_start·order); add_noise at timesteps[t_start]
        using var scope = DisposeScope.Enter();
        using var euler = (EulerDiscreteScheduler)SchedulerFactory.Create("euler", Sd15);
        euler.SetTimesteps(10);
        int tStart = 5;
        euler.SetBeginIndex(tStart * euler.Order);
        var original = Tensors.Randn([1, 4, 4, 4], new Generator(1));
        var noise = Tensors.Randn([1, 4, 4, 4], new Generator(2));
        using var t = Tensor.From([(float)euler.Timesteps[tStart]], 1);
        var noisy = euler.AddNoise(original, noise, t);
        TensorAssert.Close(noisy, original + noise * (double)euler.Sigmas[tStart], 1e-6, 0, "noisy");
        var input = euler.ScaleModelInput(noisy, euler.Timesteps[tStart]);
        Assert.Equal(tStart, euler.StepIndex);
        TensorAssert.Close(input, noisy / Math.Sqrt(euler.Sigmas[tStart] * (double)euler.Sigmas[tStart] + 1), 1e-6, 1e-6, "input");
    }

    [Fact]
    public void LcmTimestepsFollowTheDistillationGrid()
    {
        // grid k·i − 1 (k = T // original_inference_steps), descending, n floored evenly spaced picks
        using var lcm = new LCMScheduler();
        lcm.SetTimesteps(4);
        Assert.Equal([999, 759, 499, 259], lcm.Timesteps);
        lcm.Strength = 0.5; // image-to-image: only the lower half of the grid
        lcm.SetTimesteps(4);
        Assert.Equal([499, 379, 259, 139], lcm.Timesteps);
        lcm.Strength = 1.0;
        lcm.OriginalInferenceSteps = 8;
        lcm.SetTimesteps(3);
        Assert.Equal([999, 749, 374], lcm.Timesteps);
        Assert.Throws<ArgumentOutOfRangeException>(() => lcm.SetTimesteps(9));
    }

    [Fact]
    public void MisuseIsReportedClearly()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Zeros([1, 1, 2, 2]);
        using var ddim = new DDIMScheduler();
        Assert.Throws<InvalidOperationException>(() => ddim.Step(x, 1, x));
        ddim.SetTimesteps(10);
        Assert.Throws<ArgumentOutOfRangeException>(() => ddim.Step(x, 1.5, x));
        using var euler = new EulerDiscreteScheduler();
        euler.SetTimesteps(10);
        var e = Assert.Throws<ArgumentException>(() => euler.ScaleModelInput(x, 123.25));
        Assert.Contains("123.25", e.Message);
    }

    [Fact]
    public void QueueNoiseCatchesADrawAtTheWrongPlace()
    {
        // DDPM draws no variance noise at t = 0: an injected tensor too many is left over
        using var scope = DisposeScope.Enter();
        using var ddpm = new DDPMScheduler();
        ddpm.SetTimesteps(2);
        var x = Tensors.Zeros([1, 1, 2, 2]);
        var noise = new QueueNoise(Tensors.Ones([1, 1, 2, 2]), Tensors.Ones([1, 1, 2, 2]));
        foreach (var t in ddpm.Timesteps) x = ddpm.Step(x, t, x, noise).PrevSample;
        Assert.Equal([500, 0], ddpm.Timesteps);
        Assert.Equal(1, noise.Remaining);
    }

    [Theory]
    [MemberData(nameof(SamplerNames))]
    public void EtaIsDeclaredByTheSchedulerAndIgnoredByTheOnesWhoseStepHasNone(string name)
    {
        using var scope = DisposeScope.Enter();
        using var generator = new Generator(1);
        var sample = Tensors.Randn([1, 4, 8, 8], generator);
        IScheduler[] schedulers = [SchedulerFactory.Create(name, Sd15), SchedulerFactory.Create(name, Sd15)];
        try
        {
            // diffusers passes eta only to a step() that takes it: DDIM's, and TCD's (its γ)
            Assert.Equal(name is "ddim" or "tcd", schedulers[0].UsesEta);
            Assert.Throws<ArgumentOutOfRangeException>(() => schedulers[0].Eta = -0.1);
            schedulers[1].Eta = 1.0;
            var steps = schedulers.Select(s =>
            {
                s.SetTimesteps(4);
                var t = s.Timesteps[0];
                using var noise = new GeneratorNoise(2);
                return s.Step(Model(s.ScaleModelInput(sample, t), t, sample), t, sample, noise).PrevSample;
            }).ToArray();
            Assert.Equal(!schedulers[0].UsesEta, steps[0].Equal(steps[1]));
        }
        finally
        {
            foreach (var s in schedulers) s.Dispose();
        }
    }
}

/// <summary>Long sampling loops keep the number of native tensors flat (run alone: the count is process-wide).</summary>
[Collection(LiveTensorCount.Name)]
public sealed class SchedulerMemoryTests
{
    [Theory]
    [InlineData("ddpm", 1000)]
    [InlineData("pndm", 100)]
    [InlineData("dpmpp_2m_karras", 100)]
    [InlineData("lms", 100)]
    [InlineData("euler_a", 100)]
    [InlineData("lcm", 50)]
    public void LiveTensorCountStaysFlat(string name, int steps)
    {
        long baseline = Tensor.LiveCount;
        var scheduler = SchedulerFactory.Create(name);
        scheduler.SetTimesteps(steps);
        var noise = new GeneratorNoise(0);
        var e = Tensors.Randn([1, 4, 8, 8]);
        var sample = Tensors.Randn([1, 4, 8, 8]);
        long atStep10 = 0;
        int i = 0;
        foreach (var t in scheduler.Timesteps)
        {
            Tensor next;
            using (var scope = DisposeScope.Enter())
            {
                var input = scheduler.ScaleModelInput(sample, t);
                var output = 0.1 * input + (1 + t / 1000) * e;
                next = scope.Keep(scheduler.Step(output, t, sample, noise).PrevSample);
            }
            sample.Dispose();
            sample = next;
            if (++i == 10) atStep10 = Tensor.LiveCount;
        }
        Assert.Equal(atStep10, Tensor.LiveCount);
        sample.Dispose();
        e.Dispose();
        noise.Dispose();
        scheduler.Dispose(); // frees the multistep history
        Assert.Equal(baseline, Tensor.LiveCount);
    }
}
