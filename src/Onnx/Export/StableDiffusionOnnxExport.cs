using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx.Export;

/// <summary>How <c>ldm export onnx</c> writes a model.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>The ONNX opset: 17 (LayerNormalization's first) or 18 (the last this writer's IR version 8 allows).</summary>
    public int Opset { get; init; } = 17;

    /// <summary>Weights and computation in float16 (a force_upcast VAE stays float32, as diffusers keeps it).</summary>
    public bool Fp16 { get; init; }

    public bool Overwrite { get; init; }
}

/// <summary>
/// A libtorch Stable Diffusion pipeline (loaded from a diffusers folder, a single file, our training, with LoRAs merged)
/// written as an ONNX folder in diffusers' OnnxStableDiffusionPipeline layout: model_index.json, text_encoder/, unet/,
/// vae_encoder/, vae_decoder/ (each model.onnx, the U-Net's weights in weights.pb beside it when over 2 GB, and the
/// component's config.json as optimum writes it), tokenizer/, scheduler/. SDXL is written in optimum's layout
/// (ORTStableDiffusionXLPipeline, a refiner ORTStableDiffusionXLImg2ImgPipeline): text_encoder_2/ and tokenizer_2/ beside
/// them (a refiner has only those), the U-Net taking text_embeds and time_ids, model_index.json carrying
/// force_zeros_for_empty_prompt (and requires_aesthetics_score) as diffusers stores them. The folder appears complete or
/// not at all.
/// </summary>
public static class StableDiffusionOnnxExport
{
    public static void Export(StableDiffusionPipeline pipe, string directory, OnnxExportOptions? options = null, IProgress<string>? progress = null)
    {
        options ??= new OnnxExportOptions();
        if (options.Opset is < 17 or > 18)
            throw new ArgumentOutOfRangeException(nameof(options), options.Opset, $"opset must be 17 or 18 (LayerNormalization needs 17; this writer declares ONNX IR version 8), got {options.Opset}");
        var dtype = options.Fp16 ? DType.Float16 : DType.Float32;
        var unet = pipe.Unet;
        var vae = pipe.Vae;
        var vaeDType = vae.Config.ForceUpcast ? DType.Float32 : dtype;
        // SDXL: the base's encoders are text_encoder and text_encoder_2; a refiner's one encoder is its text_encoder_2
        var encoders = new List<(string Folder, ClipTextModel Model)>();
        if (pipe.Xl is null || pipe.Models.TextEncoder2 is not null) encoders.Add(("text_encoder", pipe.TextEncoder));
        if (pipe.Xl is not null) encoders.Add(("text_encoder_2", pipe.Models.TextEncoder2 is TorchTextEncoder second ? second.Module : pipe.TextEncoder));
        AtomicFolder.Write(directory, options.Overwrite, staging =>
        {
            using var noGrad = Autograd.NoGrad();
            foreach (var (folder, text) in encoders)
                Write(staging, folder, () => TextEncoderExport.Emit(text, dtype), path => ClipTextModel.Format.WriteConfig(path, text), options.Opset, progress);
            Write(staging, "unet", () => UNetExport.Emit(unet, dtype, pipe.IsRefiner ? 5 : 6), path => UNet2DConditionModel.Format.WriteConfig(path, unet), options.Opset, progress);
            Write(staging, "vae_encoder", () => VaeExport.EmitEncoder(vae, vaeDType), path => AutoencoderKL.Format.WriteConfig(path, vae), options.Opset, progress);
            Write(staging, "vae_decoder", () => VaeExport.EmitDecoder(vae, vaeDType), path => AutoencoderKL.Format.WriteConfig(path, vae), options.Opset, progress);
            pipe.SaveTokenizerAndScheduler(staging);
            var components = new List<(string, string, string)> { ("scheduler", "diffusers", pipe.SchedulerConfig.ClassName) };
            foreach (var (folder, _) in encoders)
            {
                components.Add((folder, "diffusers", "OnnxRuntimeModel"));
                components.Add((folder.Replace("text_encoder", "tokenizer"), "transformers", "CLIPTokenizer"));
            }
            components.AddRange([("unet", "diffusers", "OnnxRuntimeModel"), ("vae_decoder", "diffusers", "OnnxRuntimeModel"), ("vae_encoder", "diffusers", "OnnxRuntimeModel")]);
            var className = pipe.Xl is null ? "OnnxStableDiffusionPipeline" : pipe.IsRefiner ? "ORTStableDiffusionXLImg2ImgPipeline" : "ORTStableDiffusionXLPipeline";
            ModelIndex.Save(staging, className, components.OrderBy(c => c.Item1, StringComparer.Ordinal),
                absent: pipe.Xl is not null && encoders.Count == 1 ? ["text_encoder", "tokenizer"] : null, flags: pipe.XlIndexFlags);
        });
    }

    private static void Write(string staging, string component, Func<OnnxGraph> emit, Action<string> writeConfig, int opset, IProgress<string>? progress)
    {
        progress?.Report(component);
        var folder = Directory.CreateDirectory(Path.Combine(staging, component)).FullName;
        using (var graph = emit()) graph.Save(Path.Combine(folder, OnnxStableDiffusion.ModelFile), opset);
        writeConfig(Path.Combine(folder, "config.json"));
    }
}
