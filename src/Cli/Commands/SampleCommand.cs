using System.CommandLine;
using LatentDiffusion.Pipeline;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm sample</c>: a grid of images from an unconditional pixel DDPM (a DDPMPipeline folder).</summary>
internal static class SampleCommand
{
    public static Command Create(CliContext context)
    {
        var model = new Option<string>("--model", "-m") { Description = "DDPMPipeline folder (model_index.json, unet/, scheduler/)", Required = true }.IsPath();
        var num = new Option<int>("--num", "-n") { Description = "Number of images", DefaultValueFactory = _ => 16 }.AtLeast(1);
        var scheduler = new Option<string>("--scheduler") { Description = "ddpm or ddim; default: the model's own scheduler" }.OneOf("ddpm", "ddim");
        var steps = new Option<int?>("--steps") { Description = "Denoising steps; default: 1000 (DDPM), 50 (DDIM)" };
        steps.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError("--steps must be at least 1"); });
        var batchSize = new Option<int?>("--batch-size") { Description = "Images denoised together (default: as many as fit in half the free memory, at most 8 on a CPU)" }.AtLeast(1);
        var seed = new Option<ulong>("--seed", "-s") { Description = "Seed of the noise: image i uses seed + i, so the same seed gives the same images", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out", "-o") { Description = "PNG grid to write (it carries the generation parameters)", DefaultValueFactory = _ => "grid.png" }.IsPath();
        var columns = new Option<int?>("--columns") { Description = "Images per row; default ⌈√num⌉" };
        columns.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError("--columns must be at least 1"); });

        var command = new Command("sample", "Sample a grid of images from a pixel DDPM model") { model, num, batchSize, scheduler, steps, seed, output, columns };
        command.SetAction((parsed, cancellationToken) =>
        {
            var directory = parsed.GetValue(model)!;
            var path = parsed.GetValue(output)!;
            var n = parsed.GetValue(num);
            var s = parsed.GetValue(seed);
            using var pipeline = Load(directory, parsed.GetValue(scheduler));
            var stepCount = parsed.GetValue(steps) ?? (pipeline.Scheduler is DDIMScheduler ? 50 : 1000);
            var images = Sample(context, pipeline, n, stepCount, s, cancellationToken, parsed.GetValue(batchSize));
            var grid = ImageGrid.Compose(images, parsed.GetValue(columns));
            var (sampler, scheduleType) = Samplers.ParameterNames(pipeline.Scheduler.Config);
            var parameters = new GenerationParameters
            {
                Prompt = "",
                Steps = stepCount,
                Sampler = sampler,
                ScheduleType = scheduleType,
                CfgScale = 1,
                Seed = unchecked((long)s),
                Width = images[0].Width,
                Height = images[0].Height,
                Model = ModelName(directory),
                Extra = [new("Batch size", n.ToString(System.Globalization.CultureInfo.InvariantCulture))],
            };
            var folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (folder is not null) Directory.CreateDirectory(folder);
            PngEncoder.Save(path, grid, parameters);
            context.Out.WriteLine($"wrote {path}: {n} images {images[0].Width}×{images[0].Height}, {parameters.Sampler} {stepCount} steps, seed {s}");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>The model's name for the PNG parameters: its folder's name, or the run's for a training run's model/ folder.</summary>
    private static string ModelName(string directory)
    {
        var full = new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
        return full.Name == "model" && full.Parent is { } run ? run.Name : full.Name;
    }

    /// <summary>Loads a DDPMPipeline folder, with its scheduler replaced by <paramref name="scheduler"/> (ddpm/ddim) configured
    /// from the model's scheduler_config.json (betas, prediction type… carry over, as diffusers' from_config does).</summary>
    public static DdpmPipeline Load(string directory, string? scheduler)
    {
        var loaded = DdpmPipeline.FromPretrained(directory);
        if (scheduler is null) return loaded;
        try
        {
            var baseConfig = SchedulerConfig.Load(Path.Combine(directory, "scheduler", "scheduler_config.json"));
            var replacement = SchedulerFactory.Create(scheduler.ToLowerInvariant(), baseConfig);
            loaded.Scheduler.Dispose();
            return new DdpmPipeline(loaded.UNet, replacement);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Generates <paramref name="n"/> images, image i from noise seeded <paramref name="seed"/> + i, in batches of
    /// <paramref name="batchSize"/> (null: the pipeline's memory-bounded choice); the batch size does not change the images.
    /// </summary>
    public static RgbImage[] Sample(CliContext context, DdpmPipeline pipeline, int n, int steps, ulong seed, CancellationToken cancellationToken, int? batchSize = null)
    {
        using var pixels = ProgressDisplay.Run(context, "sample", display =>
            pipeline.Generate(new DdpmOptions(BatchSize: n, Steps: steps, ChunkSize: batchSize), seed, display.Sink<DdpmProgress>(ProgressText.Of), cancellationToken));
        using var nchw = pixels.Permute(0, 3, 1, 2);
        return RgbImage.FromUnitTensor(nchw);
    }
}
