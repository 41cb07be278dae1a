using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// A ControlNet on an inpainting model (diffusers' StableDiffusionControlNetInpaintPipeline with a 9-channel U-Net): the
/// ControlNet is given the 4-channel latents (control_model_input), the U-Net the latents with mask and masked-image latents.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class ControlNetInpaintingTests(TinyInpainting inpainting) : IClassFixture<TinyInpainting>
{
    [Fact]
    public void AControlNetSteersInpaintingFromTheFourChannelLatentsAndAtScaleZeroChangesNothing()
    {
        var photo = InpaintingTests.Gradient(64, 64);
        var request = new InpaintRequest
        {
            Prompt = "a horse", Steps = 2, Seed = 5, InitImage = photo, MaskImage = InpaintingTests.Rectangle(64, 64, 16, 20, 24, 16), Strength = 0.75,
        };
        var control = InpaintingTests.Rectangle(64, 64, 8, 8, 40, 32);

        using var pipe = inpainting.Load();
        Assert.Equal(9, pipe.Unet.Config.InChannels);
        using var controlNet = new RecordingControlNet(ControlNetOf(pipe.Unet.Config));
        using var plain = pipe.Inpaint(request);
        using var steered = pipe.Inpaint(request with { ControlNets = [new ControlNetUnit(controlNet, control)] });
        Assert.NotEmpty(controlNet.Inputs);
        Assert.All(controlNet.Inputs, shape => Assert.Equal([2, 4, 8, 8], shape)); // guided: unconditional and conditional rows
        Assert.False(steered.Latents.Equal(plain.Latents), "the ControlNet left the inpainting unchanged");

        // residuals · 0 added to the U-Net's skips: the plain inpainting result, bit for bit
        using var zero = pipe.Inpaint(request with { ControlNets = [new ControlNetUnit(controlNet, control) { Scale = 0 }] });
        Assert.True(zero.Latents.Equal(plain.Latents), "a ControlNet at scale 0 changed the inpainting");
    }

    /// <summary>
    /// A ControlNet made for the 9-channel U-Net as diffusers' ControlNetModel.from_unet makes one (the shipped tiny ControlNet
    /// has another block layout), reading 4-channel latents; its zero convolutions drawn at random so that it steers at all.
    /// </summary>
    private static TorchControlNet ControlNetOf(UNet2DConditionModelConfig unet)
    {
        using var generator = new Generator(11);
        var config = ControlNetModelConfig.FromUNet(unet, [8, 8, 16, 16]) with { InChannels = unet.OutChannels };
        var model = new ControlNetModel(config, generator);
        using (Autograd.NoGrad())
        using (DisposeScope.Enter())
            foreach (var (name, parameter) in model.NamedParameters())
                if (name.StartsWith("controlnet_down_blocks", StringComparison.Ordinal) || name.StartsWith("controlnet_mid_block", StringComparison.Ordinal))
                    parameter.CopyFrom(Tensors.Randn(parameter.Shape, generator) * 0.1);
        return new TorchControlNet(model, "controlnet_from_unet");
    }
}
