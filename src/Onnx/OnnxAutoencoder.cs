using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// The ONNX Runtime engine's VAE: diffusers' vae_decoder graph (latent_sample → sample) and, for image-to-image, its
/// vae_encoder graph (sample → latent_sample). diffusers' export of the encoder returns one RANDOM sample of the
/// posterior (mean + std · RandomNormalLike, ONNX Runtime's own generator: not reproducible from our seed); an encoder
/// whose output has 2 × latent channels returns the posterior's moments, which the pipeline samples with the seed.
/// Scaling and down-sampling come from the folder's config.json, else Stable Diffusion's (diffusers' ONNX pipeline
/// hard-codes 0.18215 and 8 too).
/// </summary>
public sealed class OnnxAutoencoder : IAutoencoder
{
    private readonly OnnxSession decoder;
    private readonly OnnxSession? encoder;
    private readonly string decoderInput, decoderOutput;
    private readonly string? encoderInput, encoderOutput;

    public AutoencoderKLConfig Config { get; }

    internal OnnxAutoencoder(OnnxSession decoder, OnnxSession? encoder, AutoencoderKLConfig config)
    {
        this.decoder = decoder;
        this.encoder = encoder;
        Config = config;
        decoderInput = decoder.RequireInput("latent", "latent_sample", "latents", "z");
        decoder.RejectUnknownInputs(decoderInput);
        decoderOutput = decoder.OutputOr("sample");
        _ = decoder.DTypeOf(decoderInput);
        if (encoder is not null)
        {
            encoderInput = encoder.RequireInput("image", "sample", "pixel_values");
            encoder.RejectUnknownInputs(encoderInput);
            // our export's moments when present (sampled with the request's seed), else diffusers' drawn sample
            encoderOutput = encoder.Outputs.ContainsKey("latent_parameters") ? "latent_parameters" : encoder.OutputOr("latent_sample");
            _ = encoder.DTypeOf(encoderInput);
        }
    }

    /// <summary>Opens the decoder graph and, when given, the encoder graph.</summary>
    public static OnnxAutoencoder Open(string decoderPath, string? encoderPath, AutoencoderKLConfig config, OnnxEngineOptions options)
    {
        var sessions = new List<OnnxSession>();
        try
        {
            var decoder = OnnxSession.Open(decoderPath, options);
            sessions.Add(decoder);
            var encoder = encoderPath is null ? null : OnnxSession.Open(encoderPath, options);
            if (encoder is not null) sessions.Add(encoder);
            return new OnnxAutoencoder(decoder, encoder, config);
        }
        catch
        {
            foreach (var s in sessions) s.Dispose();
            throw;
        }
    }

    public int DownscaleFactor => Config.DownscaleFactor;
    public int LatentChannels => Config.LatentChannels;

    /// <summary>The pipeline's side runs in float32; a float16 graph is fed converted tensors.</summary>
    public DType DType => DType.Float32;

    public DiagonalGaussianDistribution Encode(Tensor pixels)
    {
        if (encoder is null)
            throw new NotSupportedException($"{decoder.Path}: this ONNX model has no vae_encoder graph, which image-to-image needs");
        Tensor moments;
        bool sampled;
        using (var scope = DisposeScope.Enter())
        {
            var x = OnnxTensors.Prepare(pixels, encoder.DTypeOf(encoderInput!));
            var channels = encoder.Outputs[encoderOutput!].Dimensions is [_, > 0 and var c, ..] ? c : LatentChannels;
            var f = DownscaleFactor;
            var output = Tensors.Empty([pixels.Size(0), channels, pixels.Size(2) / f, pixels.Size(3) / f], encoder.DTypeOf(encoderOutput!));
            encoder.Run([(encoderInput!, x)], [(encoderOutput!, output)]);
            var result = output.To(DType.Float32);
            sampled = channels != 2 * LatentChannels;
            // A sample already drawn by the graph: a distribution with no spread around it.
            moments = scope.Keep(sampled ? Tensor.Cat([result, Tensors.FullLike(result, DiagonalGaussianDistribution.LogVarMin)], 1) : result);
        }
        return new DiagonalGaussianDistribution(moments, deterministic: sampled);
    }

    public Tensor Decode(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        var z = OnnxTensors.Prepare(latents, decoder.DTypeOf(decoderInput));
        var dims = decoder.Outputs[decoderOutput].Dimensions;
        var channels = dims.Length > 1 && dims[1] > 0 ? dims[1] : Config.OutChannels;
        var f = DownscaleFactor;
        var output = Tensors.Empty([latents.Size(0), channels, latents.Size(2) * f, latents.Size(3) * f], decoder.DTypeOf(decoderOutput));
        decoder.Run([(decoderInput, z)], [(decoderOutput, output)]);
        return scope.Keep(output.DType == DType.Float32 ? output : output.To(DType.Float32));
    }

    public Tensor ScaleLatents(Tensor z) => AutoencoderKL.ScaleLatents(z, Config);
    public Tensor UnscaleLatents(Tensor latents) => AutoencoderKL.UnscaleLatents(latents, Config);

    public double EstimateDecodeBytes(long height, long width, long images, bool fusedAttention) =>
        MemoryEstimate.VaeDecode(Config, height, width, images, decoder.DTypeOf(decoderInput).ElementSize(), tiling: false, slicing: false, fusedAttention: false);

    public void Dispose()
    {
        decoder.Dispose();
        encoder?.Dispose();
    }
}
