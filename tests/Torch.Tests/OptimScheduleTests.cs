using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Learning-rate schedules (diffusers' formulas through torch's LambdaLR) and EMA (diffusers' EMAModel).</summary>
public class OptimScheduleTests
{
    private static LearningRateSchedule Schedule(string name, long warmup, long total, double cycles) => name switch
    {
        "cosine_cycles" => LearningRateSchedule.CosineWithWarmup(warmup, total, cycles),
        _ => LearningRateSchedule.FromName(name, warmup, total),
    };

    [Theory]
    [InlineData("constant")]
    [InlineData("constant_with_warmup")]
    [InlineData("linear")]
    [InlineData("cosine")]
    [InlineData("cosine_cycles")]
    public void ScheduledLearningRatesEqualLambdaLR(string name)
    {
        var reference = OptimReference.Get("schedules").GetProperty(name);
        var schedule = Schedule(name, reference.GetProperty("warmup").GetInt64(), reference.GetProperty("total").GetInt64(),
            reference.GetProperty("cycles").GetDouble());
        var expected = OptimReference.Doubles(reference.GetProperty("lrs"));
        using var p = Tensors.Zeros([1]).RequiresGrad_();
        using var opt = new SGD([p], 1e-3);
        var scheduler = new LRScheduler(opt, schedule);
        for (int step = 0; step < expected.Length; step++)
        {
            Assert.Equal(step, scheduler.CurrentStep);
            Assert.True(Math.Abs(expected[step] - opt.LearningRate) <= 1e-18, $"step {step}: {opt.LearningRate:R} vs {expected[step]:R}");
            scheduler.Step();
        }

        var resumed = new LRScheduler(opt, schedule, currentStep: 20, baseLearningRate: 1e-3);
        Assert.Equal(expected[20], resumed.LearningRate);
    }

    [Fact]
    public void UnknownScheduleNameIsAnError()
    {
        var e = Assert.Throws<ArgumentException>(() => LearningRateSchedule.FromName("polynomial"));
        Assert.Contains("polynomial", e.Message);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("capped")]
    [InlineData("warmup")]
    public void EmaEqualsDiffusersEmaModel(string name)
    {
        var reference = OptimReference.Get("ema").GetProperty(name);
        var settings = reference.GetProperty("settings");
        double Setting(string key, double fallback) => settings.TryGetProperty(key, out var v) ? v.GetDouble() : fallback;
        var (w, b, x, y) = OptimReference.Problem();
        x.Dispose();
        y.Dispose();
        using var _w = w.RequiresGrad_();
        using var _b = b.RequiresGrad_();
        using var ema = new ExponentialMovingAverage([w, b], decay: Setting("decay", 0.9999), minDecay: Setting("min_decay", 0),
            updateAfterStep: (long)Setting("update_after_step", 0),
            useWarmup: settings.TryGetProperty("use_ema_warmup", out var warm) && warm.GetBoolean(),
            invGamma: Setting("inv_gamma", 1), power: Setting("power", 2.0 / 3.0));

        var decays = OptimReference.Doubles(reference.GetProperty("decays"));
        var parameters = reference.GetProperty("params");
        var shadows = reference.GetProperty("shadows");
        for (int k = 0; k < decays.Length; k++)
        {
            using (Autograd.NoGrad())
            using (DisposeScope.Enter())
            {
                w.CopyFrom(Tensor.From(OptimReference.Floats(parameters[k][0]), w.Shape));
                b.CopyFrom(Tensor.From(OptimReference.Floats(parameters[k][1]), b.Shape));
            }
            var decay = ema.Update();
            Assert.True(Math.Abs(decays[k] - decay) <= 1e-12, $"update {k + 1}: decay {decay} vs {decays[k]}");
            Assert.Equal(decay, ema.CurrentDecay);
            Assert.Equal(k + 1, ema.OptimizationStep);
            TensorAssert.Close(ema.ShadowParameters[0].ToArray<float>(), OptimReference.Floats(shadows[k][0]), 1e-6, 0, $"{name} update {k + 1} weight");
            TensorAssert.Close(ema.ShadowParameters[1].ToArray<float>(), OptimReference.Floats(shadows[k][1]), 1e-6, 0, $"{name} update {k + 1} bias");
        }
    }

    [Fact]
    public void EmaWeightsCanBeSwappedInForEvaluationAndBack()
    {
        using var layer = new Linear(3, 2, generator: new Generator(1));
        using var ema = new ExponentialMovingAverage(layer, decay: 0.5);
        var initial = layer.Weight.ToArray<float>();
        using (Autograd.NoGrad()) layer.Weight.Fill_(1);
        ema.Update(0.5);
        var training = layer.Weight.ToArray<float>();

        ema.Store();
        ema.CopyTo();
        Assert.Equal(initial.Select(v => 0.5f * v + 0.5f), layer.Weight.ToArray<float>());
        Assert.True(layer.Weight.RequiresGrad);
        ema.Restore();
        Assert.Equal(training, layer.Weight.ToArray<float>());
        Assert.Throws<InvalidOperationException>(() => ema.Restore());

        using var copy = new Linear(3, 2);
        ema.CopyTo(copy);
        Assert.True(copy.Weight.Equal(ema.ShadowParameters[0]));
        using var wrong = new Linear(3, 2, bias: false);
        Assert.Throws<ArgumentException>(() => ema.CopyTo(wrong));
    }

    [Fact]
    public void EmaStateRoundTrips()
    {
        using var layer = new Linear(3, 2, generator: new Generator(2));
        using var ema = new ExponentialMovingAverage(layer);
        using (Autograd.NoGrad()) layer.Bias!.Fill_(3);
        ema.Update();
        ema.Update();
        var saved = ema.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        Assert.Equal(["optimization_step", "shadow_params.0", "shadow_params.1"], saved.Keys);

        using (Autograd.NoGrad()) layer.Bias!.Fill_(5);
        using var restored = new ExponentialMovingAverage(layer);
        restored.LoadStateDict(saved);
        Assert.Equal(2, restored.OptimizationStep);
        Assert.Equal([3f, 3f], restored.ShadowParameters[1].ToArray<float>());
        Assert.True(restored.ShadowParameters[0].Equal(ema.ShadowParameters[0]));
        saved.Remove("shadow_params.1", out var removed);
        removed!.Dispose();
        var e = Assert.Throws<ArgumentException>(() => restored.LoadStateDict(saved));
        Assert.Contains("shadow_params.1 is missing", e.Message);
        foreach (var t in saved.Values) t.Dispose();
    }
}
