using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Check #12 of the v2 golden README for UniPC, DEIS and TCD: loaded from SD1.5's raw scheduler_config.json
/// with the class's _class_name, the v1 harness (10 steps, ε = 0.1·x_in + (1 + t/1000)·E, injected noise)
/// must reproduce diffusers 0.30.3's timesteps, sigmas, every step and add_noise within the manifest's
/// tolerances (|actual − golden| ≤ atol + rtol·|golden|).
/// </summary>
public sealed class UniPcDeisTcdGoldenTests(ITestOutputHelper output)
{
    private const double Rtol = 1e-4;

    // case, the manifest's steps atol, noise draws, eta (TCD's step_kwargs), the scheduler type
    [Theory]
    [InlineData("unipc", 2e-4, 0, 0.0, typeof(UniPCMultistepScheduler))]
    [InlineData("unipc_trailing", 2e-4, 0, 0.0, typeof(UniPCMultistepScheduler))]
    [InlineData("deis", 2e-4, 0, 0.0, typeof(DEISMultistepScheduler))]
    [InlineData("tcd", 4e-4, 9, 0.3, typeof(TCDScheduler))]
    public void MatchesDiffusersGolden(string name, double atol, int noiseDraws, double eta, Type schedulerType)
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(Golden($"scheduler_{name}"));
        using var scheduler = SchedulerFactory.Load(ConfigPath(name));
        Assert.IsType(schedulerType, scheduler);
        scheduler.Eta = eta;
        scheduler.SetTimesteps(10);

        var expectedTimesteps = golden.Load("timesteps");
        Assert.Equal(DType.Int64, expectedTimesteps.DType);
        Assert.Equal(DType.Int64, scheduler.TimestepDType);
        Assert.Equal(expectedTimesteps.ToArray<long>(), scheduler.Timesteps.Select(t => (long)t).ToArray());
        if (golden.Keys.Contains("sigmas"))
        {
            var sigmas = Assert.IsAssignableFrom<ISigmaSchedule>(scheduler).Sigmas;
            TensorAssert.Close(sigmas.Select(v => (double)v).ToArray(), golden.Load("sigmas").ToArray<float>().Select(v => (double)v).ToArray(), 1e-5, 1e-5, "sigmas");
        }
        TensorAssert.Close([scheduler.InitNoiseSigma], [golden.Load("init_noise_sigma").Item()], 0, 1e-5, "init_noise_sigma");

        var e = golden.Load("input.E");
        var noise = new QueueNoise(golden.Keys.Where(k => k.StartsWith("noise.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(k => golden.Load(k)).ToList());
        var sample = golden.Load("input.x_T") * scheduler.InitNoiseSigma;
        double maxError = TensorAssert.Close(sample, golden.Load("initial_sample"), atol, Rtol, "initial_sample");
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            string step = $"step{i:D2}";
            var modelInput = scheduler.ScaleModelInput(sample, t);
            maxError = Math.Max(maxError, TensorAssert.Close(modelInput, golden.Load($"{step}.model_input"), atol, Rtol, $"{step}.model_input"));
            var modelOutput = 0.1 * modelInput + (1 + t / 1000) * e;
            maxError = Math.Max(maxError, TensorAssert.Close(modelOutput, golden.Load($"{step}.model_output"), atol, Rtol, $"{step}.model_output"));
            var result = scheduler.Step(modelOutput, t, sample, noise);
            maxError = Math.Max(maxError, TensorAssert.Close(result.PrevSample, golden.Load($"{step}.prev_sample"), atol, Rtol, $"{step}.prev_sample"));
            sample = result.PrevSample;
        }
        maxError = Math.Max(maxError, TensorAssert.Close(sample, golden.Load("final_sample"), atol, Rtol, "final_sample"));
        if (golden.Keys.Contains("step09.pred_noised_sample")) // TCD's last step returns its pred_noised_sample
            TensorAssert.Close(sample, golden.Load("step09.pred_noised_sample"), atol, Rtol, "step09.pred_noised_sample");
        Assert.Equal(noiseDraws, noise.Drawn);
        Assert.Equal(0, noise.Remaining);

        // add_noise on a fresh scheduler after set_begin_index(2·order)
        using var fresh = SchedulerFactory.Load(ConfigPath(name));
        fresh.SetTimesteps(10);
        fresh.SetBeginIndex(2 * fresh.Order);
        var noisy = fresh.AddNoise(golden.Load("add_noise.original"), golden.Load("add_noise.noise"), golden.Load("add_noise.timestep"));
        double addNoiseError = TensorAssert.Close(noisy, golden.Load("add_noise.noisy"), atol, Rtol, "add_noise.noisy");
        output.WriteLine($"{name}: max |error| over steps {maxError:E2}, add_noise {addNoiseError:E2}");
    }
}
