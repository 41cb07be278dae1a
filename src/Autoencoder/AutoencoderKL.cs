using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// The KL-regularised autoencoder of latent diffusion (diffusers' <c>AutoencoderKL</c>): an image x
/// in [−1, 1] is encoded to the posterior N(μ, σ²) over latents with 2^(levels−1) times fewer pixels
/// (<see cref="Encode"/>), and latents are decoded back to an image in [−1, 1] (<see cref="Decode"/>).
/// Latents here are unscaled; diffusion works on <see cref="ScaleLatents"/>(z). Parameter names are
/// diffusers' (<c>encoder.down_blocks.0.resnets.0.conv1.weight</c>, <c>quant_conv.weight</c>, …).
/// <para>
/// Memory: <see cref="UseSlicing"/> runs a batch one image at a time; <see cref="UseTiling"/> encodes
/// and decodes overlapping tiles of <see cref="TileSampleMinSize"/> pixels and blends their seams
/// linearly, exactly as diffusers does, so that a 1024×1024 image needs the memory of a 512×512 tile.
/// </para>
/// </summary>
public sealed partial class AutoencoderKL : Module<Tensor, Tensor>
{
    public AutoencoderKLConfig Config { get; }
    public Encoder Encoder { get; }
    public Decoder Decoder { get; }
    public Conv2d? QuantConv { get; }
    public Conv2d? PostQuantConv { get; }

    /// <summary>Encode and decode a batch one image at a time (diffusers' enable_slicing).</summary>
    public bool UseSlicing { get; set; }

    /// <summary>Encode and decode large inputs in overlapping tiles (diffusers' enable_tiling).</summary>
    public bool UseTiling { get; set; }

    /// <summary>Tile size in pixels; diffusers uses config.sample_size.</summary>
    public int TileSampleMinSize { get; set; }

    /// <summary>Tile size in latents: sample_size / 2^(levels−1).</summary>
    public int TileLatentMinSize { get; set; }

    /// <summary>Fraction of a tile that overlaps its neighbour and is blended (0.25).</summary>
    public double TileOverlapFactor { get; set; } = 0.25;

    /// <summary>Builds the architecture of <paramref name="config"/> with PyTorch's default initialisation.</summary>
    public AutoencoderKL(AutoencoderKLConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        Encoder = RegisterModule("encoder", new Encoder(config, generator));
        Decoder = RegisterModule("decoder", new Decoder(config, generator));
        var latent = config.LatentChannels;
        if (config.UseQuantConv) QuantConv = RegisterModule("quant_conv", new Conv2d(2 * latent, 2 * latent, 1, generator: generator));
        if (config.UsePostQuantConv) PostQuantConv = RegisterModule("post_quant_conv", new Conv2d(latent, latent, 1, generator: generator));
        TileSampleMinSize = config.SampleSize;
        TileLatentMinSize = config.SampleSize / config.DownscaleFactor;
    }

    /// <summary>
    /// The posterior q(z | x) of images <paramref name="x"/> [B, in_channels, H, W] in [−1, 1]; the caller
    /// owns (disposes) it. H and W should be multiples of <see cref="AutoencoderKLConfig.DownscaleFactor"/>.
    /// </summary>
    public DiagonalGaussianDistribution Encode(Tensor x) => new(EncodeMoments(x));

    /// <summary>The encoder's moments [B, 2·latent_channels, h, w] (μ and log σ² before clamping) of <paramref name="x"/>.</summary>
    public Tensor EncodeMoments(Tensor x)
    {
        if (UseTiling && (x.Size(-1) > TileSampleMinSize || x.Size(-2) > TileSampleMinSize)) return TiledEncodeMoments(x);
        using var scope = DisposeScope.Enter();
        var hidden = UseSlicing && x.Size(0) > 1 ? Sliced(x, Encoder.Forward) : Encoder.Forward(x);
        return scope.Keep(QuantConv is null ? hidden : hidden.Then(QuantConv.Forward));
    }

    /// <summary>Decodes unscaled latents <paramref name="z"/> [B, latent_channels, h, w] to images [B, out_channels, 8h, 8w] in about [−1, 1].</summary>
    public Tensor Decode(Tensor z) => UseSlicing && z.Size(0) > 1 ? Sliced(z, DecodeBatch) : DecodeBatch(z);

    // diffusers' _decode: tiles when the latent is larger than a tile.
    private Tensor DecodeBatch(Tensor z)
    {
        if (UseTiling && (z.Size(-1) > TileLatentMinSize || z.Size(-2) > TileLatentMinSize)) return TiledDecode(z);
        if (PostQuantConv is null) return Decoder.Forward(z);
        using var quantized = PostQuantConv.Forward(z);
        return Decoder.Forward(quantized);
    }

    /// <summary>Reconstructs <paramref name="sample"/> through the posterior's mode (diffusers' forward).</summary>
    public override Tensor Forward(Tensor sample) => Forward(sample, samplePosterior: false);

    /// <summary>Encodes, takes z = μ (or a sample z = μ + σε), and decodes.</summary>
    public Tensor Forward(Tensor sample, bool samplePosterior, Generator? generator = null)
    {
        using var posterior = Encode(sample);
        using var z = samplePosterior ? posterior.Sample(generator) : posterior.Mode();
        return Decode(z);
    }

    /// <summary>Latents for diffusion: (z − shift_factor) · scaling_factor.</summary>
    public Tensor ScaleLatents(Tensor z) => ScaleLatents(z, Config);

    /// <summary>(z − shift_factor) · scaling_factor of <paramref name="config"/>: for a VAE run by another engine too.</summary>
    public static Tensor ScaleLatents(Tensor z, AutoencoderKLConfig config)
    {
        if (config.ShiftFactor is not { } shift) return z * config.ScalingFactor;
        using var shifted = z - shift;
        return shifted * config.ScalingFactor;
    }

    /// <summary>Latents for <see cref="Decode"/>: z / scaling_factor + shift_factor.</summary>
    public Tensor UnscaleLatents(Tensor latents) => UnscaleLatents(latents, Config);

    /// <summary>latents / scaling_factor + shift_factor of <paramref name="config"/>.</summary>
    public static Tensor UnscaleLatents(Tensor latents, AutoencoderKLConfig config)
    {
        if (config.ShiftFactor is not { } shift) return latents / config.ScalingFactor;
        using var unscaled = latents / config.ScalingFactor;
        return unscaled + shift;
    }

    private static Tensor Sliced(Tensor batch, Func<Tensor, Tensor> run)
    {
        using var scope = DisposeScope.Enter();
        var results = batch.Split(1).Select(slice => slice.Then(run)).ToList();
        return scope.Keep(Tensor.Cat(results));
    }

    // ---- diffusers model folders ----

    /// <summary>How an AutoencoderKL lives in a diffusers folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    public static PretrainedFormat<AutoencoderKL, AutoencoderKLConfig> Format { get; } = new()
    {
        ReadConfig = AutoencoderKLConfig.Load,
        Create = config => new AutoencoderKL(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, AutoencoderKLConfig.ClassName),
    };

    /// <summary>
    /// Loads a diffusers folder (config.json + diffusion_pytorch_model[.variant].safetensors). Every
    /// tensor must match by name and shape; weights convert to the module's dtype (fp16 files load as fp32
    /// unless <paramref name="dtype"/> says otherwise). The model is in evaluation mode.
    /// </summary>
    public static AutoencoderKL FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors, loadable by diffusers' from_pretrained.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);
}
