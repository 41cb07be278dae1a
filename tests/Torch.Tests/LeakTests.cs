using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

[Collection(LiveTensorCount.Name)]
public class LeakTests
{
    private sealed class Mlp : Module<Tensor, Tensor>
    {
        private readonly Sequential net;

        public Mlp(Generator g) =>
            net = RegisterModule("net", new Sequential(new Linear(8, 32, generator: g), new SiLU(), new Linear(32, 8, generator: g)));

        public override Tensor Forward(Tensor input) => net.Forward(input);
    }

    [Fact]
    public void TrainingLoopKeepsTheLiveTensorCountFlat()
    {
        using var g = new Generator(0);
        using var model = new Mlp(g);
        using var x = Tensors.Randn([16, 8], g);
        using var target = Tensors.Randn([16, 8], g);
        using var optimizer = new AdamW(model.Parameters(), 1e-2);
        using var ema = new ExponentialMovingAverage(model, decay: 0.99);
        var scheduler = new LRScheduler(optimizer, LearningRateSchedule.CosineWithWarmup(100, 3000));

        double firstLoss = 0, lastLoss = 0;
        void Iteration(int i)
        {
            using var scope = DisposeScope.Enter();
            optimizer.ZeroGrad();
            var loss = Functional.MseLoss(model.Forward(x), target);
            loss.Backward();
            GradientClipping.ClipGradNorm(model.Parameters(), 1.0);
            optimizer.Step();
            scheduler.Step();
            ema.Update();
            if (i == 0) firstLoss = loss.Item();
            lastLoss = loss.Item();
        }

        for (int i = 0; i < 50; i++) Iteration(i); // optimiser and EMA state now exist
        _ = optimizer.StateDict();
        _ = ema.StateDict();
        var warm = LiveTensorCount.Settled();
        for (int i = 50; i < 3000; i++) Iteration(i);
        // no collection here: a handle the loop forgot would still be alive (or only partly finalised)
        Assert.Equal(warm, Tensor.LiveCount);
        Assert.True(lastLoss < 0.5 * firstLoss, $"the loop should learn: loss {firstLoss} → {lastLoss}");
    }

    [Fact]
    public void ModulesFreeEveryTensorTheyOwn()
    {
        var before = LiveTensorCount.Settled();
        var m = new Tiny();
        Assert.Equal(44 + 9, Tensor.LiveCount - before);
        m.To(DType.Float64);
        Assert.Equal(44 + 9, Tensor.LiveCount - before);
        m.Dispose();
        m.Dispose();
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void OptimisersAndEmaFreeTheirState()
    {
        var before = LiveTensorCount.Settled();
        using (var layer = new Linear(4, 4))
        {
            var adam = new Adam(layer.Parameters());
            var sgd = new SGD(layer.Parameters(), 0.1, momentum: 0.9);
            var ema = new ExponentialMovingAverage(layer);
            using (DisposeScope.Enter()) layer.Forward(Tensors.Ones([2, 4])).Sum().Backward();
            adam.Step();
            sgd.Step();
            ema.Update();
            ema.Store();
            _ = adam.StateDict();
            _ = ema.StateDict();
            layer.ZeroGrad();
            Assert.Equal(2 + 2 * 2 + 2 + 2 + 2 + 2 + 1, Tensor.LiveCount - before);
            adam.Dispose();
            sgd.Dispose();
            ema.Dispose();
        }
        Assert.Equal(before, Tensor.LiveCount);
    }
}
