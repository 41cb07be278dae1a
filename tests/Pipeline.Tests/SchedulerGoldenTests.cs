using LatentDiffusion.Tests.Common;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Check #8 of the golden README: each scheduler, loaded from its raw scheduler_config.json, runs the
/// manifest's 10-step loop with a synthetic model (ε = 0.1·x_in + (1 + t/1000)·E) and the injected
/// noise, and must reproduce diffusers 0.30.3's timesteps, sigmas, every step and add_noise.
/// </summary>
public sealed class SchedulerGoldenTests(ITestOutputHelper output)
{
    private const double StepAtol = 1e-4, StepRtol = 1e-4;

    // case, noise draws the manifest lists, whether step() returns pred_original_sample, whether
    // diffusers' scheduler has set_begin_index (add_noise then uses index 2·order)
    [Theory]
    [InlineData("ddpm", 10, false)]
    [InlineData("ddim", 0, false)]
    [InlineData("pndm", 0, false)]
    [InlineData("euler", 10, true)]        // 10 draws, unused (s_churn = 0), not saved: zeros injected
    [InlineData("euler_ancestral", 10, true)]
    [InlineData("dpmpp_2m", 0, true)]
    [InlineData("dpmpp_2m_sde", 10, true)] // v2's scheduler_dpmpp_sde: DPMSolverMultistep sde-dpmsolver++ order 2, one draw per step
    [InlineData("dpmsolver_singlestep", 0, true)]
    [InlineData("euler_exponential", 10, true)] // diffusers 0.31's use_exponential_sigmas (golden v2, check 12)
    public void MatchesDiffusersGolden(string name, int noiseDraws, bool hasBeginIndex) => Check(name, noiseDraws, hasBeginIndex, StepAtol);

    // Check #12 of the v2 README, the second-order schedulers: one step() per timesteps entry (19 for 10 steps), the
    // manifest's per-file step atol; KDPM2 ancestral draws in every call and the golden saves all 19 draws.
    [Theory]
    [InlineData("heun", 0, 2e-4)]
    [InlineData("kdpm2", 0, 3e-4)]
    [InlineData("kdpm2_ancestral", 19, 4e-4)]
    public void MatchesDiffusersSecondOrderGolden(string name, int noiseDraws, double stepAtol) => Check(name, noiseDraws, hasBeginIndex: true, stepAtol);

    private void Check(string name, int noiseDraws, bool hasBeginIndex, double stepAtol)
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(Golden($"scheduler_{name}"));
        using var scheduler = SchedulerFactory.Load(ConfigPath(name));
        scheduler.SetTimesteps(10);

        // timesteps: int64 exact, float32 within 1e-3
        var expectedTimesteps = golden.Load("timesteps");
        Assert.Equal(expectedTimesteps.DType, scheduler.TimestepDType);
        if (expectedTimesteps.DType == DType.Int64)
            Assert.Equal(expectedTimesteps.ToArray<long>(), scheduler.Timesteps.Select(t => (long)t).ToArray());
        else
            TensorAssert.Close(scheduler.Timesteps, expectedTimesteps.ToArray<float>().Select(v => (double)v).ToArray(), 1e-3, 0, "timesteps");
        using (var tensor = scheduler.TimestepsTensor())
        {
            Assert.Equal(expectedTimesteps.DType, tensor.DType);
            TensorAssert.Close(tensor, expectedTimesteps, expectedTimesteps.DType == DType.Int64 ? 0 : 1e-3, 0, "TimestepsTensor");
        }

        if (golden.Keys.Contains("sigmas"))
        {
            var sigmas = Assert.IsAssignableFrom<ISigmaSchedule>(scheduler).Sigmas;
            TensorAssert.Close(sigmas.Select(v => (double)v).ToArray(), golden.Load("sigmas").ToArray<float>().Select(v => (double)v).ToArray(), 1e-5, 1e-5, "sigmas");
        }
        TensorAssert.Close([scheduler.InitNoiseSigma], [golden.Load("init_noise_sigma").Item()], 0, 1e-5, "init_noise_sigma");

        var noiseTensors = golden.Keys.Where(k => k.StartsWith("noise.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(k => golden.Load(k)).ToList();
        var e = golden.Load("input.E");
        if (noiseTensors.Count == 0 && noiseDraws > 0) noiseTensors = Enumerable.Range(0, noiseDraws).Select(_ => Tensors.ZerosLike(e)).ToList();
        var noise = new QueueNoise(noiseTensors);

        var sample = golden.Load("input.x_T") * scheduler.InitNoiseSigma;
        double maxError = TensorAssert.Close(sample, golden.Load("initial_sample"), stepAtol, StepRtol, "initial_sample");
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            string step = $"step{i:D2}";
            var modelInput = scheduler.ScaleModelInput(sample, t);
            maxError = Math.Max(maxError, TensorAssert.Close(modelInput, golden.Load($"{step}.model_input"), stepAtol, StepRtol, $"{step}.model_input"));
            var modelOutput = 0.1 * modelInput + (1 + t / 1000) * e;
            maxError = Math.Max(maxError, TensorAssert.Close(modelOutput, golden.Load($"{step}.model_output"), stepAtol, StepRtol, $"{step}.model_output"));
            var result = scheduler.Step(modelOutput, t, sample, noise);
            maxError = Math.Max(maxError, TensorAssert.Close(result.PrevSample, golden.Load($"{step}.prev_sample"), stepAtol, StepRtol, $"{step}.prev_sample"));
            if (golden.Keys.Contains($"{step}.pred_original_sample"))
            {
                Assert.NotNull(result.PredOriginalSample);
                maxError = Math.Max(maxError, TensorAssert.Close(result.PredOriginalSample!, golden.Load($"{step}.pred_original_sample"), stepAtol, StepRtol, $"{step}.pred_original_sample"));
            }
            sample = result.PrevSample;
        }
        maxError = Math.Max(maxError, TensorAssert.Close(sample, golden.Load("final_sample"), stepAtol, StepRtol, "final_sample"));
        Assert.Equal(noiseDraws, noise.Drawn);
        Assert.Equal(0, noise.Remaining);

        // add_noise on a fresh scheduler
        using var fresh = SchedulerFactory.Load(ConfigPath(name));
        fresh.SetTimesteps(10);
        if (hasBeginIndex) fresh.SetBeginIndex(2 * fresh.Order);
        var noisy = fresh.AddNoise(golden.Load("add_noise.original"), golden.Load("add_noise.noise"), golden.Load("add_noise.timestep"));
        double addNoiseError = TensorAssert.Close(noisy, golden.Load("add_noise.noisy"), stepAtol, StepRtol, "add_noise.noisy");
        output.WriteLine($"{name}: max |error| over steps {maxError:E2}, add_noise {addNoiseError:E2}");
    }
}
