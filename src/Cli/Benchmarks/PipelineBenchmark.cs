using System.Diagnostics;
using System.Text.Json;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Onnx;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>What <c>ldm bench txt2img --json</c> prints.</summary>
/// <param name="PeakRssMb">The process's peak resident set: building or loading the models, and the generation.</param>
/// <param name="GenerationPeakRssMb">The peak resident set of the generation alone (reset after the models are ready).</param>
public sealed record PipelineBenchResult(string Engine, string Input, int Steps, string Scheduler, double Seconds, double PeakRssMb, double LatentsMaxAbs, int Threads,
    string Dtype = "f32", bool VaeTiling = false, double? GenerationPeakRssMb = null);

/// <summary>
/// A whole text-to-image generation on a Stable Diffusion pipeline built from configs with random N(0, 0.02) weights
/// (timing does not depend on the values), or loaded from a diffusers folder, on libtorch or, exported first, on ONNX
/// Runtime: one timed run.
/// </summary>
public static class PipelineBenchmark
{
    /// <summary>The request every run makes (negative prompt empty, guidance 7.5); a reference implementation reads it from <see cref="RequestFile"/>.</summary>
    public const string Prompt = "a red sneaker on a white background";
    public const ulong Seed = 1;

    /// <summary>Written by <see cref="SaveModel"/> beside the diffusers folder's parts: the request and its token ids, so another implementation runs the same generation.</summary>
    public const string RequestFile = "bench_request.json";

    public sealed record Configs(string Unet, string Vae, string TextEncoder, string Scheduler, string Tokenizer);

    /// <param name="Model">A diffusers folder to load (as <c>ldm generate --model</c> does) instead of drawing random weights.</param>
    /// <param name="SaveOutput">A .safetensors file to write the final latents ("latents") and the image in [0, 1] ("image", [1, H, W, 3], as diffusers' output_type "np") to.</param>
    public sealed record Options(int Size = 512, int Steps = 20, bool Onnx = false, DType DType = DType.Float32, bool VaeTiling = false, string? Model = null,
        string? SaveOutput = null);

    public static PipelineBenchResult TextToImage(Configs configs, Options o, CancellationToken cancellationToken = default)
    {
        if (o.Size < 8 || o.Size % 8 != 0) throw new ArgumentException($"--size must be a positive multiple of 8, got {o.Size}");
        if (o.Onnx && (o.DType != DType.Float32 || o.VaeTiling)) throw new ArgumentException("--engine onnx benchmarks f32 without --vae-tiling");
        var options = new PipelineOptions { DType = o.DType, VaeTiling = o.VaeTiling };
        var pipe = o.Model is { } model ? StableDiffusionPipeline.FromPretrained(model, options) : Build(configs, options);
        var engine = "libtorch";
        string? folder = null;
        try
        {
            if (o.Onnx)
            {
                folder = Directory.CreateTempSubdirectory("ld-bench-txt2img-").FullName;
                var path = Path.Combine(folder, "model");
                StableDiffusionOnnxExport.Export(pipe, path);
                pipe.Dispose();
                GC.Collect();
                ModelBenchmark.ResetPeakRss();
                pipe = OnnxStableDiffusion.FromPretrained(path);
                engine = $"onnxruntime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version} (CPU, {TorchRuntime.Threads} threads)";
            }
            var request = new GenerationRequest { Prompt = Prompt, Steps = o.Steps, Width = o.Size, Height = o.Size, Seed = Seed };
            var loadPeak = ModelBenchmark.PeakRssBytes();
            ModelBenchmark.ResetPeakRss();
            var clock = Stopwatch.StartNew();
            using var result = pipe.TextToImage(request, cancellation: cancellationToken);
            var seconds = clock.Elapsed.TotalSeconds;
            var generationPeak = ModelBenchmark.PeakRssBytes();
            using var max = result.Latents.Abs().Max();
            if (o.SaveOutput is { } output)
            {
                using var latents = result.Latents.To(DType.Float32);
                SafeTensorsFile.Save(output, [new("latents", latents), new("image", result.Pixels)]);
            }
            return new PipelineBenchResult(engine, $"{o.Size}×{o.Size}, \"{request.Prompt}\", guidance 7.5", o.Steps, pipe.SchedulerConfig.ClassName,
                Math.Round(seconds, 2), Math.Round(Math.Max(loadPeak, generationPeak) / 1048576.0, 1), max.To(DType.Float32).Item(), TorchRuntime.Threads,
                o.DType == DType.BFloat16 ? "bf16" : "f32", o.VaeTiling, Math.Round(generationPeak / 1048576.0, 1));
        }
        finally
        {
            pipe.Dispose();
            if (folder is not null) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// Writes the random-weight pipeline that <see cref="TextToImage"/> builds from <paramref name="configs"/> as a diffusers
    /// folder (float32 safetensors), with <see cref="RequestFile"/>: the prompt, seed and guidance, and the token ids of the
    /// prompt and the empty negative prompt as the pipeline tokenises them.
    /// </summary>
    public static void SaveModel(Configs configs, string directory, bool overwrite = false)
    {
        using var pipe = Build(configs, new PipelineOptions());
        pipe.Save(directory, overwrite);
        var request = new
        {
            prompt = Prompt,
            negative_prompt = "",
            seed = Seed,
            guidance_scale = 7.5,
            input_ids = pipe.Tokenizer.Encode(Prompt).InputIds,
            negative_input_ids = pipe.Tokenizer.Encode("").InputIds,
        };
        AtomicFile.WriteAllText(Path.Combine(directory, RequestFile), JsonSerializer.Serialize(request) + "\n");
    }

    private static StableDiffusionPipeline Build(Configs c, PipelineOptions options)
    {
        using var noGrad = Autograd.NoGrad();
        using var generator = new Generator(ModelBenchmark.WeightSeed);
        UNet2DConditionModel unet;
        AutoencoderKL vae;
        ClipTextModel text;
        using (Init.SkipInitialization())
        {
            unet = new UNet2DConditionModel(UNet2DConditionModelConfig.Load(c.Unet));
            vae = new AutoencoderKL(AutoencoderKLConfig.Load(c.Vae));
            text = new ClipTextModel(ClipTextConfig.Load(c.TextEncoder));
        }
        foreach (var module in new Module[] { unet, vae, text })
        {
            foreach (var p in module.Parameters()) p.Normal_(0, 0.02, generator);
            // Frozen, as StableDiffusionPipeline.FromPretrained loads them: a convolution keeps one copy of its weight (issue 19).
            module.RequiresGrad(false);
        }
        // The text encoder's whole context (77 tokens for SD1.5, as its tokenizer pads to), whatever the tokenizer folder says
        // (the embedded model's pads to 16): the U-Net's cross-attention then does SD1.5's work.
        var tokenizerConfig = ClipTokenizerConfig.Load(c.Tokenizer) with { ModelMaxLength = text.Config.MaxPositionEmbeddings };
        var tokenizer = ClipTokenizer.FromFiles(Path.Combine(c.Tokenizer, ClipTokenizer.VocabularyFileName), Path.Combine(c.Tokenizer, ClipTokenizer.MergesFileName), tokenizerConfig);
        return new StableDiffusionPipeline(tokenizer, text, unet, vae, SchedulerConfig.Load(c.Scheduler), "random-weights", options);
    }
}
