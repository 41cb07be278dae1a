using LatentDiffusion.Tests.Common;
using System.Text.Json;
using LatentDiffusion.Torch.Optim;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Optimisers and gradient clipping against torch.optim / torch.nn.utils (PyTorch 1.13) on a small regression.</summary>
public class OptimTests
{
    private const double Atol = 1e-6;

    private static JsonElement Config(string name) => OptimReference.Get("optimizers").GetProperty(name);

    private static Optimizer Make(JsonElement cfg, Tensor[] parameters)
    {
        var lr = cfg.GetProperty("lr").GetDouble();
        var wd = cfg.GetProperty("weight_decay").GetDouble();
        switch (cfg.GetProperty("kind").GetString())
        {
            case "sgd":
                return new SGD(parameters, lr, cfg.GetProperty("momentum").GetDouble(), cfg.GetProperty("dampening").GetDouble(), wd,
                    cfg.GetProperty("nesterov").GetBoolean());
            case var kind:
                var betas = OptimReference.Doubles(cfg.GetProperty("betas"));
                var eps = cfg.GetProperty("eps").GetDouble();
                return kind == "adamw"
                    ? new AdamW(parameters, lr, (betas[0], betas[1]), eps, wd)
                    : new Adam(parameters, lr, (betas[0], betas[1]), eps, wd);
        }
    }

    /// <summary>One step of the reference loop: mse(x Wᵀ (+ b), y), backward, optimiser step; returns the loss.</summary>
    private static double TrainStep(Optimizer opt, Tensor w, Tensor b, Tensor x, Tensor y, bool useBias = true)
    {
        opt.ZeroGrad();
        double loss;
        using (DisposeScope.Enter())
        {
            var l = Functional.MseLoss(Functional.Linear(x, w, useBias ? b : null), y);
            l.Backward();
            loss = l.Item();
        }
        opt.Step();
        return loss;
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("adam")]
    [InlineData("adamw_late_bias")]
    [InlineData("sgd_nesterov")]
    [InlineData("sgd_dampening")]
    [InlineData("sgd_plain")]
    public void StepsEqualTorchOptim(string name)
    {
        var cfg = Config(name);
        var result = cfg.GetProperty("result");
        var biasFrom = cfg.TryGetProperty("bias_from_step", out var bf) ? bf.GetInt32() : 1;
        var (w, b, x, y) = OptimReference.Problem();
        using var _w = w.RequiresGrad_();
        using var _b = b.RequiresGrad_();
        using var _x = x;
        using var _y = y;
        using var opt = Make(cfg, [w, b]);
        var losses = OptimReference.Doubles(result.GetProperty("losses"));
        var weights = result.GetProperty("weights").EnumerateArray().Select(OptimReference.Floats).ToArray();
        var biases = result.GetProperty("biases").EnumerateArray().Select(OptimReference.Floats).ToArray();
        for (int k = 0; k < losses.Length; k++)
        {
            var loss = TrainStep(opt, w, b, x, y, useBias: k + 1 >= biasFrom);
            Assert.True(Math.Abs(losses[k] - loss) <= Atol, $"step {k + 1}: loss {loss} vs torch {losses[k]}");
            TensorAssert.Close(w.ToArray<float>(), weights[k], Atol, 0, $"{name} step {k + 1} weight");
            TensorAssert.Close(b.ToArray<float>(), biases[k], Atol, 0, $"{name} step {k + 1} bias");
        }
        if (opt is AdamBase adam)
        {
            Assert.Equal(losses.Length, adam.StepOf(0));
            Assert.Equal(losses.Length - biasFrom + 1, adam.StepOf(1));
        }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("adamw_late_bias")]
    [InlineData("sgd_nesterov")]
    public void ResumingFromTheStateDictContinuesExactlyAsWithoutInterruption(string name)
    {
        var cfg = Config(name);
        var biasFrom = cfg.TryGetProperty("bias_from_step", out var bf) ? bf.GetInt32() : 1;
        var (w, b, x, y) = OptimReference.Problem();
        using var _x = x;
        using var _y = y;

        float[] wFinal, bFinal;
        using (var w1 = w.Clone().RequiresGrad_())
        using (var b1 = b.Clone().RequiresGrad_())
        using (var opt = Make(cfg, [w1, b1]))
        {
            for (int k = 1; k <= 5; k++) TrainStep(opt, w1, b1, x, y, k >= biasFrom);
            wFinal = w1.ToArray<float>();
            bFinal = b1.ToArray<float>();
        }

        Dictionary<string, Tensor> saved;
        using (var opt = Make(cfg, [w.RequiresGrad_(), b.RequiresGrad_()]))
        {
            for (int k = 1; k <= 2; k++) TrainStep(opt, w, b, x, y, k >= biasFrom);
            saved = opt.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        }
        using var w2 = w.Detach().Clone().RequiresGrad_();
        using var b2 = b.Detach().Clone().RequiresGrad_();
        w.Dispose();
        b.Dispose();
        using (var resumed = Make(cfg, [w2, b2]))
        {
            resumed.LoadStateDict(saved);
            foreach (var t in saved.Values) t.Dispose();
            for (int k = 3; k <= 5; k++) TrainStep(resumed, w2, b2, x, y, k >= biasFrom);
        }
        Assert.Equal(wFinal, w2.ToArray<float>());
        Assert.Equal(bFinal, b2.ToArray<float>());
    }

    [Fact]
    public void AdamStateDictNamesStateLikePyTorchAndLoadingValidatesIt()
    {
        using var w = Tensors.Ones([2, 3]).RequiresGrad_();
        using var b = Tensors.Ones([2]).RequiresGrad_();
        using var opt = new AdamW([w, b]);
        Assert.Empty(opt.StateDict());
        using (DisposeScope.Enter()) (w.Sum() * 2).Backward();
        opt.Step();
        var state = opt.StateDict();
        Assert.Equal(["state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"], state.Keys);
        Assert.Equal(1, state["state.0.step"].ItemInt64());

        using var wrongShape = Tensors.Zeros([3, 2]);
        using var step = Tensors.Scalar(4, DType.Int64);
        var e = Assert.Throws<ArgumentException>(() => opt.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["state.0.step"] = step, ["state.0.exp_avg"] = wrongShape, ["state.0.exp_avg_sq"] = state["state.0.exp_avg_sq"],
            ["state.2.exp_avg"] = wrongShape, ["state.1.step"] = step,
        }));
        Assert.Contains("state.0.exp_avg has shape [3, 2] but parameter 0 has [2, 3]", e.Message);
        Assert.Contains("unexpected key state.2.exp_avg", e.Message);
        Assert.Contains("state.1.exp_avg is missing", e.Message);
        Assert.Equal(1, opt.StepOf(0));

        opt.LoadStateDict(new Dictionary<string, Tensor>());
        Assert.Equal(0, opt.StepOf(0));
        Assert.Empty(opt.StateDict());
    }

    [Fact]
    public void SgdLoadsMomentumBuffersAsItsOwnCopies()
    {
        using var w = Tensors.Ones([3]).RequiresGrad_();
        using var opt = new SGD([w], 0.1, momentum: 0.9);
        using var buffer = Tensors.Full([3], 2.0, DType.Float64);
        opt.LoadStateDict(new Dictionary<string, Tensor> { ["state.0.momentum_buffer"] = buffer });
        var own = opt.StateDict()["state.0.momentum_buffer"];
        Assert.NotSame(buffer, own);
        Assert.Equal(DType.Float32, own.DType);
        using (DisposeScope.Enter()) w.Sum().Backward();
        opt.Step();
        // buf = 0.9 · 2 + 1 = 2.8; w = 1 − 0.1 · 2.8
        Assert.Equal([0.72f, 0.72f, 0.72f], w.ToArray<float>());
        Assert.Throws<ArgumentException>(() => new SGD([w], 0.1, nesterov: true));
        Assert.Throws<ArgumentException>(() => new SGD([w, w], 0.1));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ClipGradNormEqualsTorch(int index)
    {
        var reference = OptimReference.Get("clip_grad_norm")[index];
        var normType = reference.GetProperty("norm_type") is { ValueKind: JsonValueKind.String } ? double.PositiveInfinity : reference.GetProperty("norm_type").GetDouble();
        var (w, b, x, y) = OptimReference.Problem();
        using var _w = w.RequiresGrad_();
        using var _b = b.RequiresGrad_();
        using var _x = x;
        using var _y = y;
        using (DisposeScope.Enter()) (Functional.MseLoss(Functional.Linear(x, w, b), y) * 3).Backward();

        var total = GradientClipping.ClipGradNorm([w, b], reference.GetProperty("max_norm").GetDouble(), normType);

        var expected = reference.GetProperty("total_norm").GetDouble();
        Assert.True(Math.Abs(expected - total) <= 1e-6 * expected, $"total norm {total} vs torch {expected}");
        using var gw = w.Grad!;
        using var gb = b.Grad!;
        TensorAssert.Close(gw.ToArray<float>(), OptimReference.Floats(reference.GetProperty("weight_grad")), Atol, 0, "weight grad");
        TensorAssert.Close(gb.ToArray<float>(), OptimReference.Floats(reference.GetProperty("bias_grad")), Atol, 0, "bias grad");
    }

    [Fact]
    public void ClipGradNormWithoutGradientsIsZero()
    {
        using var w = Tensors.Ones([2]).RequiresGrad_();
        Assert.Equal(0, GradientClipping.ClipGradNorm([w], 1.0));
    }
}
