using LatentDiffusion.Blocks;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

[Collection(LiveTensorCount.Name)]
public class LeakTests
{
    [Fact]
    public void ConditionalForwardsFreeEveryTemporary()
    {
        using var model = UNet2DConditionModel.FromPretrained(SharedData.Fixture("latentunet/sd_tiny/unet")).Eval();
        using var golden = new Golden("goldens/unet.safetensors");
        using var noGrad = Autograd.NoGrad();
        void Run(int? slice)
        {
            model.SetAttentionSlice(slice);
            using var y = model.Forward(golden["batch_t.input.sample"], golden["batch_t.input.timestep"], golden["batch_t.input.encoder_hidden_states"]);
            using var z = model.Forward(golden["float_t.input.sample"], 12.5, golden["float_t.input.encoder_hidden_states"]);
        }
        Run(null);
        var before = LiveTensorCount.Settled();
        for (int i = 0; i < 3; i++) Run(i == 1 ? 1 : null);
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void PixelForwardsAndTrainingStepsFreeEveryTemporary()
    {
        using var model = UNet2DModel.FromPretrained(SharedData.Fixture("latentunet/ddpm_tiny/unet"));
        using var golden = new Golden("goldens/unet2d_ddpm.safetensors");
        void Run()
        {
            using (Autograd.NoGrad())
            using (var y = model.Forward(golden["input.sample"], golden["input.timestep"])) { }
            using var scope = DisposeScope.Enter();
            var loss = model.Forward(golden["input.sample"], 50).Square().Mean();
            loss.Backward();
            model.ZeroGrad();
        }
        Run();
        var before = LiveTensorCount.Settled();
        for (int i = 0; i < 3; i++) Run();
        Assert.Equal(before, Tensor.LiveCount);
    }
}
