using System.Globalization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// TAESD, the tiny distilled autoencoder (diffusers' <c>AutoencoderTiny</c>, keys <c>encoder.layers.N…</c>,
/// <c>decoder.layers.N…</c>): about 1.2 M parameters per half, a deterministic encoder and a decoder
/// fast enough to preview latents at every sampling step.
/// <para>
/// Conventions: <see cref="Encode"/> takes images in [−1, 1] and <see cref="Decode"/> returns images in
/// about [−1, 1] (not clamped), like <see cref="AutoencoderKL"/>, so it can stand in for the full VAE.
/// <see cref="EncodeFromUnitRange"/> / <see cref="DecodeToUnitRange"/> use TAESD's own [0, 1]
/// convention. Latents are raw (unscaled): TAESD for SD takes the SD latents divided by 0.18215,
/// i.e. the same values <see cref="AutoencoderKL.Decode"/> takes.
/// </para>
/// </summary>
public sealed class AutoencoderTiny : Module<Tensor, Tensor>
{
    public AutoencoderTinyConfig Config { get; }
    public EncoderTiny Encoder { get; }
    public DecoderTiny Decoder { get; }

    /// <summary>Encode and decode a batch one image at a time.</summary>
    public bool UseSlicing { get; set; }

    public AutoencoderTiny(AutoencoderTinyConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        Encoder = RegisterModule("encoder", new EncoderTiny(config, generator));
        Decoder = RegisterModule("decoder", new DecoderTiny(config, generator));
    }

    /// <summary>Images [B, 3, H, W] in [−1, 1] → raw latents [B, C, H/8, W/8].</summary>
    public Tensor Encode(Tensor image) => Batched(image, Encoder.Forward);

    /// <summary>Raw latents → images in about [−1, 1] (diffusers' convention).</summary>
    public Tensor Decode(Tensor latents) => Batched(latents, Decoder.Forward);

    /// <summary>Images in [0, 1] → raw latents (TAESD's convention).</summary>
    public Tensor EncodeFromUnitRange(Tensor image) => Batched(image, Encoder.Layers.Forward);

    /// <summary>Raw latents → images in about [0, 1] (TAESD's convention; clamp before display).</summary>
    public Tensor DecodeToUnitRange(Tensor latents) => Batched(latents, Decoder.DecodeToUnitRange);

    /// <summary>Reconstruction: decode(encode(x)) for x in [−1, 1], without the 8-bit latent quantisation of diffusers' forward.</summary>
    public override Tensor Forward(Tensor sample)
    {
        using var latents = Encode(sample);
        return Decode(latents);
    }

    /// <summary>Raw latents → [0, 1]: z / (2·latent_magnitude) + latent_shift, clamped (to store latents as 8-bit images).</summary>
    public Tensor ScaleLatents(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        return scope.Keep((latents / (2 * Config.LatentMagnitude) + Config.LatentShift).Clamp(0, 1));
    }

    /// <summary>[0, 1] → raw latents: (x − latent_shift) · 2·latent_magnitude.</summary>
    public Tensor UnscaleLatents(Tensor scaled)
    {
        using var shifted = scaled - Config.LatentShift;
        return shifted * (2 * Config.LatentMagnitude);
    }

    private Tensor Batched(Tensor batch, Func<Tensor, Tensor> run)
    {
        if (!UseSlicing || batch.Size(0) <= 1) return run(batch);
        using var scope = DisposeScope.Enter();
        var results = batch.Split(1).Select(slice => slice.Then(run)).ToList();
        return scope.Keep(Tensor.Cat(results));
    }

    // ---- loading and saving ----

    /// <summary>How an AutoencoderTiny lives in a diffusers folder; its config records the decoder's channels as block_out_channels.</summary>
    public static PretrainedFormat<AutoencoderTiny, AutoencoderTinyConfig> Format { get; } = new()
    {
        ReadConfig = AutoencoderTinyConfig.Load,
        Create = config => new AutoencoderTiny(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config with { BlockOutChannels = model.Config.DecoderBlockOutChannels },
            AutoencoderTinyConfig.ClassName),
    };

    /// <summary>Loads a diffusers folder (config.json + diffusion_pytorch_model[.variant].safetensors), in evaluation mode.</summary>
    public static AutoencoderTiny FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>
    /// Loads madebyollin's TAESD files (<c>taesd_encoder.safetensors</c> / <c>taesd_decoder.safetensors</c>,
    /// <c>taef1_*</c>, <c>taef2_*</c>: safetensors conversions of the .pth state dicts). The latent channel
    /// count and TAEF2's pooling branches are read from the files' shapes and keys unless
    /// <paramref name="config"/> is given. Either path may be null to load only one half (the other keeps
    /// its random initialisation), e.g. a decoder for previews.
    /// </summary>
    public static AutoencoderTiny FromTaesd(string? encoderPath, string? decoderPath, AutoencoderTinyConfig? config = null,
        Device? device = null, DType? dtype = null)
    {
        if (encoderPath is null && decoderPath is null) throw new ArgumentException("give the encoder file, the decoder file or both");
        var encoderState = encoderPath is null ? null : SafeTensorsFile.LoadFile(encoderPath);
        Dictionary<string, Tensor>? decoderState = null;
        try
        {
            decoderState = decoderPath is null ? null : ShiftDecoderKeys(SafeTensorsFile.LoadFile(decoderPath));
            config ??= InferConfig(encoderState, decoderState);
            var (encoderFile, decoderFile) = (encoderPath, decoderPath);
            if (encoderState is not null) Pretrained.RequireFinite(encoderFile!, encoderState);
            if (decoderState is not null) Pretrained.RequireFinite(decoderFile!, decoderState);
            var layout = config;
            return Pretrained.Build(() => new AutoencoderTiny(layout), model =>
            {
                if (encoderState is not null) LoadPart(model.Encoder.Layers, encoderState, encoderFile!);
                if (decoderState is not null) LoadPart(model.Decoder.Layers, decoderState, decoderFile!);
            }, device, dtype, skipInitialization: encoderPath is not null && decoderPath is not null);
        }
        finally
        {
            foreach (var t in encoderState?.Values ?? Enumerable.Empty<Tensor>()) t.Dispose();
            foreach (var t in decoderState?.Values ?? Enumerable.Empty<Tensor>()) t.Dispose();
        }
    }

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors (diffusers' layout).</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    private static void LoadPart(Module part, IReadOnlyDictionary<string, Tensor> state, string file)
    {
        try
        {
            part.LoadStateDict(state);
        }
        catch (StateDictException e)
        {
            throw new InvalidDataException($"{file}: {e.Message}", e);
        }
    }

    // TAESD's decoder Sequential starts with Clamp (no parameters) at index 0; diffusers' layers do not.
    private static Dictionary<string, Tensor> ShiftDecoderKeys(Dictionary<string, Tensor> state)
    {
        var shifted = new Dictionary<string, Tensor>();
        foreach (var (key, tensor) in state)
        {
            var dot = key.IndexOf('.');
            if (dot <= 0 || !int.TryParse(key[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index < 1)
            {
                foreach (var t in state.Values) t.Dispose();
                throw new InvalidDataException($"'{key}' is not a TAESD decoder key (expected '<index ≥ 1>.<name>', e.g. '1.weight')");
            }
            shifted[(index - 1).ToString(CultureInfo.InvariantCulture) + key[dot..]] = tensor;
        }
        return shifted;
    }

    // Latent channels from the encoder's last conv or the decoder's first; pooling from "pool" keys.
    private static AutoencoderTinyConfig InferConfig(Dictionary<string, Tensor>? encoder, Dictionary<string, Tensor>? decoder)
    {
        var defaults = new AutoencoderTinyConfig();
        var encoderBlocks = defaults.NumEncoderBlocks.Sum() + defaults.NumEncoderBlocks.Length; // index of the last conv
        long latent;
        if (decoder is not null && decoder.TryGetValue("0.weight", out var first)) latent = first.Size(1);
        else if (encoder is not null && encoder.TryGetValue($"{encoderBlocks}.weight", out var last)) latent = last.Size(0);
        else throw new InvalidDataException("cannot tell the latent channel count: the files are not TAESD's layout");
        var pooled = (encoder?.Keys ?? Enumerable.Empty<string>()).Concat(decoder?.Keys ?? Enumerable.Empty<string>()).Any(k => k.Contains(".pool."));
        return defaults with { LatentChannels = (int)latent, UseMidblockGn = pooled };
    }
}
