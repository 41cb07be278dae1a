using System.Diagnostics;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Onnx;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>What <c>ldm bench txt2img --json</c> prints.</summary>
public sealed record PipelineBenchResult(string Engine, string Input, int Steps, string Scheduler, double Seconds, double PeakRssMb, double LatentsMaxAbs, int Threads);

/// <summary>
/// A whole text-to-image generation on a Stable Diffusion pipeline built from configs with random N(0, 0.02) weights
/// (timing does not depend on the values), on libtorch or, exported first, on ONNX Runtime: one timed run.
/// </summary>
public static class PipelineBenchmark
{
    public sealed record Configs(string Unet, string Vae, string TextEncoder, string Scheduler, string Tokenizer);

    public static PipelineBenchResult TextToImage(Configs configs, int size, int steps, bool onnx, CancellationToken cancellationToken = default)
    {
        if (size < 8 || size % 8 != 0) throw new ArgumentException($"--size must be a positive multiple of 8, got {size}");
        var pipe = Build(configs);
        var engine = "libtorch";
        string? folder = null;
        try
        {
            if (onnx)
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
            var request = new GenerationRequest { Prompt = "a red sneaker on a white background", Steps = steps, Width = size, Height = size, Seed = 1 };
            var clock = Stopwatch.StartNew();
            using var result = pipe.TextToImage(request, cancellation: cancellationToken);
            var seconds = clock.Elapsed.TotalSeconds;
            using var max = result.Latents.Abs().Max();
            return new PipelineBenchResult(engine, $"{size}×{size}, \"{request.Prompt}\", guidance 7.5", steps, pipe.SchedulerConfig.ClassName,
                Math.Round(seconds, 2), Math.Round(ModelBenchmark.PeakRssBytes() / 1048576.0, 1), max.Item(), TorchRuntime.Threads);
        }
        finally
        {
            pipe.Dispose();
            if (folder is not null) Directory.Delete(folder, recursive: true);
        }
    }

    private static StableDiffusionPipeline Build(Configs c)
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
            foreach (var p in module.Parameters()) p.Normal_(0, 0.02, generator);
        return new StableDiffusionPipeline(ClipTokenizer.FromDirectory(c.Tokenizer), text, unet, vae, SchedulerConfig.Load(c.Scheduler), "random-weights");
    }
}
