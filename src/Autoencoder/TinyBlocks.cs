using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>nn.Upsample(scale_factor, mode) of diffusers' DecoderTiny (nearest for TAESD).</summary>
public sealed class Upsample : Module<Tensor, Tensor>
{
    public double ScaleFactor { get; }
    public InterpolationMode Mode { get; }

    public Upsample(double scaleFactor, string mode = "nearest")
    {
        ScaleFactor = scaleFactor;
        Mode = mode switch
        {
            "nearest" => InterpolationMode.Nearest,
            "bilinear" => InterpolationMode.Bilinear,
            "bicubic" => InterpolationMode.Bicubic,
            _ => throw new ArgumentException($"upsample mode \"{mode}\" is not supported", nameof(mode)),
        };
    }

    public override Tensor Forward(Tensor input) => Functional.Interpolate(input, ScaleFactor, Mode);
}

/// <summary>
/// diffusers' EncoderTiny: <c>layers</c> = conv(in, c) → blocks, then per later stage a stride-2
/// bias-free conv → blocks, and a final conv to the latent channels. Its <see cref="Layers"/> hold
/// exactly the modules and keys of a TAESD encoder file (<c>0.weight</c>, <c>1.conv.0.weight</c>, …).
/// <see cref="Forward"/> takes images in [−1, 1] (diffusers); <see cref="Layers"/> takes [0, 1] (TAESD).
/// </summary>
public sealed class EncoderTiny : Module<Tensor, Tensor>
{
    public Sequential Layers { get; }

    public EncoderTiny(AutoencoderTinyConfig config, Generator? generator = null)
    {
        var channels = config.EncoderBlockOutChannels;
        var layers = new List<Module<Tensor, Tensor>>();
        for (int i = 0; i < channels.Length; i++)
        {
            var c = channels[i];
            layers.Add(i == 0
                ? new Conv2d(config.InChannels, c, 3, padding: 1, generator: generator)
                : new Conv2d(c, c, 3, stride: 2, padding: 1, bias: false, generator: generator));
            var pooled = config.UseMidblockGn && i == channels.Length - 1;
            for (int n = 0; n < config.NumEncoderBlocks[i]; n++) layers.Add(new AutoencoderTinyBlock(c, c, config.ActFn, pooled, generator));
        }
        layers.Add(new Conv2d(channels[^1], config.LatentChannels, 3, padding: 1, generator: generator));
        Layers = RegisterModule("layers", new Sequential([.. layers]));
    }

    /// <summary>Images in [−1, 1] → raw latents (diffusers maps to TAESD's [0, 1] first: (x + 1) / 2).</summary>
    public override Tensor Forward(Tensor image)
    {
        using var unit = (image + 1.0).Then(x => x / 2.0);
        return Layers.Forward(unit);
    }
}

/// <summary>
/// diffusers' DecoderTiny: tanh(z / 3)·3 (TAESD's Clamp), then <c>layers</c> = conv(latent, c) → act →
/// per stage: blocks, and (all but the last stage) upsample → bias-free conv; the last stage ends with
/// conv(c, out). TAESD's decoder file has the Clamp at index 0, so its keys are these layers' plus one
/// (<c>1.weight</c> is <c>layers.0.weight</c>). <see cref="Forward"/> returns [−1, 1] (diffusers).
/// </summary>
public sealed class DecoderTiny : Module<Tensor, Tensor>
{
    public Sequential Layers { get; }

    public DecoderTiny(AutoencoderTinyConfig config, Generator? generator = null)
    {
        var channels = config.DecoderBlockOutChannels;
        var layers = new List<Module<Tensor, Tensor>>
        {
            new Conv2d(config.LatentChannels, channels[0], 3, padding: 1, generator: generator),
            Activations.Create(config.ActFn),
        };
        for (int i = 0; i < channels.Length; i++)
        {
            var c = channels[i];
            var last = i == channels.Length - 1;
            var pooled = config.UseMidblockGn && i == 0;
            for (int n = 0; n < config.NumDecoderBlocks[i]; n++) layers.Add(new AutoencoderTinyBlock(c, c, config.ActFn, pooled, generator));
            if (!last) layers.Add(new Upsample(config.UpsamplingScalingFactor, config.UpsampleFn));
            layers.Add(new Conv2d(c, last ? config.OutChannels : c, 3, padding: 1, bias: last, generator: generator));
        }
        Layers = RegisterModule("layers", new Sequential([.. layers]));
    }

    /// <summary>TAESD's Clamp: tanh(z / 3)·3 keeps latents in (−3, 3) smoothly.</summary>
    public static Tensor Clamp(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        return scope.Keep((latents / 3.0).Tanh() * 3.0);
    }

    /// <summary>Raw latents → image in about [0, 1] (TAESD's convention; not clamped).</summary>
    public Tensor DecodeToUnitRange(Tensor latents)
    {
        using var clamped = Clamp(latents);
        return Layers.Forward(clamped);
    }

    /// <summary>Raw latents → image in about [−1, 1]: 2·decode − 1 (diffusers' convention; not clamped).</summary>
    public override Tensor Forward(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        return scope.Keep(DecodeToUnitRange(latents).Then(x => x * 2.0).Then(x => x - 1.0));
    }
}
