using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.Optim;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>The U-Nets are trained in this project: gradients must reach every trainable weight and a step must lower the loss.</summary>
public class TrainingTests
{
    [Fact]
    public void AdamWStepsReduceTheDenoisingLossOfATinyPixelUNet()
    {
        TorchRuntime.ManualSeed(21);
        using var model = new UNet2DModel(ConfigJson.Parse<UNet2DModelConfig>(UNet2DModelTests.TinyJson("{}"), "test")).Train();
        using var noise = Tensors.Randn([4, 1, 8, 8], new Generator(1));
        using var x = Tensors.Randn([4, 1, 8, 8], new Generator(2));
        using var t = Tensor.From(new[] { 10L, 200L, 500L, 900L }, 4);
        AssertLossFalls(model, () => model.Forward(x, t), noise);
    }

    [Fact]
    public void AdamWStepsReduceTheDenoisingLossOfATinyConditionalUNet()
    {
        TorchRuntime.ManualSeed(22);
        using var model = new UNet2DConditionModel(ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelTests.TinyJson("{}"), "test")).Train();
        using var noise = Tensors.Randn([2, 4, 8, 8], new Generator(1));
        using var x = Tensors.Randn([2, 4, 8, 8], new Generator(2));
        using var c = Tensors.Randn([2, 7, 32], new Generator(3));
        using var t = Tensor.From(new[] { 100L, 800L }, 2);
        AssertLossFalls(model, () => model.Forward(x, t, c), noise);
    }

    private static void AssertLossFalls(Torch.NN.Module model, Func<Tensor> predict, Tensor target)
    {
        var trainable = model.Parameters().Where(p => p.RequiresGrad).ToList();
        using var optimizer = new AdamW(trainable, 1e-3);
        double Step(bool checkGradients)
        {
            using var scope = DisposeScope.Enter();
            optimizer.ZeroGrad();
            var loss = Functional.MseLoss(predict(), target);
            loss.Backward();
            if (checkGradients)
                foreach (var (name, p) in model.NamedParameters().Where(p => p.Parameter.RequiresGrad))
                    using (var g = p.Grad) Assert.True(g is not null, $"no gradient reached {name}");
            optimizer.Step();
            return loss.Item();
        }
        var first = Step(checkGradients: true);
        double last = first;
        for (int i = 0; i < 4; i++) last = Step(false);
        Assert.True(last < first, $"loss should fall: {first} → {last}");
    }
}
