using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The cases without a diffusers golden (LMS, LCM, the Karras variants, PRK warm-up, DDPM/DDIM
/// options, DPM-Solver orders and variants): reference numbers computed by
/// tests/fixtures/pipeline/reference/make_scheduler_reference.py, a NumPy/PyTorch re-implementation
/// of diffusers 0.30.3's scheduler math that reproduces the six goldens, with the golden loop.
/// </summary>
public sealed class SchedulerReferenceTests
{
    private const double Atol = 1e-4, Rtol = 1e-4;

    private static readonly Lazy<JsonObject> Reference = new(() =>
        JsonNode.Parse(File.ReadAllText(SharedData.Fixture("pipeline/reference/scheduler_reference.json")))!.AsObject());

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Reference.Value["cases"]!.AsArray()) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    private static Tensor Values(JsonNode? node, long[] shape) =>
        Tensor.From(node!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray(), shape);

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesReference(string name)
    {
        using var scope = DisposeScope.Enter();
        var root = Reference.Value;
        var c = root["cases"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!.AsObject();
        var shape = root["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
        var xT = Values(root["x_T"], shape);
        var e = Values(root["E"], shape);
        int steps = c["steps"]!.GetValue<int>();

        IScheduler Create()
        {
            var scheduler = SchedulerFactory.Create(SchedulerConfig.FromJson(c["config"]!.DeepClone().AsObject()));
            foreach (var (key, value) in c["step_attributes"]!.AsObject())
            {
                double v = value!.GetValue<double>();
                switch (scheduler, key)
                {
                    case (DDIMScheduler d, "eta"): d.Eta = v; break;
                    case (EulerDiscreteScheduler u, "s_churn"): u.SChurn = v; break;
                    case (EulerDiscreteScheduler u, "s_tmin"): u.STmin = v; break;
                    case (EulerDiscreteScheduler u, "s_tmax"): u.STmax = v; break;
                    default: throw new InvalidOperationException($"unknown step attribute {key}");
                }
            }
            return scheduler;
        }

        using var scheduler = Create();
        scheduler.SetTimesteps(steps);
        var expectedTimesteps = c["timesteps"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        if (scheduler.TimestepDType == DType.Int64) Assert.Equal(expectedTimesteps, scheduler.Timesteps);
        else TensorAssert.Close(scheduler.Timesteps, expectedTimesteps, 1e-3, 0, "timesteps");
        if (c["sigmas"] is JsonArray expectedSigmas)
        {
            var sigmas = Assert.IsAssignableFrom<ISigmaSchedule>(scheduler).Sigmas;
            TensorAssert.Close(sigmas.Select(v => (double)v).ToArray(), expectedSigmas.Select(v => v!.GetValue<double>()).ToArray(), 1e-5, 1e-5, "sigmas");
        }
        TensorAssert.Close([scheduler.InitNoiseSigma], [c["init_noise_sigma"]!.GetValue<double>()], 0, 1e-5, "init_noise_sigma");

        var noise = new QueueNoise(c["noise"]!.AsArray().Select(n => Values(n, shape)).ToList());
        var sample = xT * scheduler.InitNoiseSigma;
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            double t = scheduler.Timesteps[i];
            var modelInput = scheduler.ScaleModelInput(sample, t);
            TensorAssert.Close(modelInput, Values(c["model_input"]![i], shape), Atol, Rtol, $"{name} step {i} model_input");
            var modelOutput = 0.1 * modelInput + (1 + t / 1000) * e;
            if (scheduler.Config is DDPMSchedulerConfig { VarianceType: VarianceType.LearnedRange })
                modelOutput = Tensor.Cat([modelOutput, (0.5 * e).Clamp(-1, 1)], 1); // plus the model's variance v ∈ [−1, 1]
            var result = scheduler.Step(modelOutput, t, sample, noise);
            TensorAssert.Close(result.PrevSample, Values(c["prev_sample"]![i], shape), Atol, Rtol, $"{name} step {i} prev_sample");
            if (c["pred_original_sample"]![i] is JsonArray x0)
                TensorAssert.Close(result.PredOriginalSample!, Values(x0, shape), Atol, Rtol, $"{name} step {i} pred_original_sample");
            sample = result.PrevSample;
        }
        TensorAssert.Close(sample, Values(c["final_sample"], shape), Atol, Rtol, $"{name} final_sample");
        Assert.Equal(0, noise.Remaining);

        using var fresh = Create();
        fresh.SetTimesteps(steps);
        if (fresh is ISigmaSchedule) fresh.SetBeginIndex(2);
        using var timestep = fresh.TimestepDType == DType.Int64
            ? Tensor.From([(long)fresh.Timesteps[2]], 1)
            : Tensor.From([fresh.Timesteps[2]], 1);
        var noisy = fresh.AddNoise(Values(root["add_noise_original"], shape), Values(root["add_noise_noise"], shape), timestep);
        TensorAssert.Close(noisy, Values(c["add_noise_noisy"], shape), Atol, Rtol, $"{name} add_noise");
    }
}
