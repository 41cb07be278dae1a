using LatentDiffusion.Onnx;
using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Commands;

/// <summary>
/// <c>ldm sampler-grid</c>: one prompt and seed through every sampler of the registry (or the ones named) at each
/// step count, as a labelled grid: a row per sampler, a column per step count.
/// </summary>
internal static class SamplerGridCommand
{
    public static Command Create(CliContext context)
    {
        var prompt = new Option<string>("--prompt", "-p") { Description = "What to draw", Required = true };
        var steps = new Option<string>("--steps") { Description = "Comma-separated step counts, one column each", DefaultValueFactory = _ => "10,30" };
        var samplers = new Option<string?>("--samplers") { Description = "Comma-separated samplers, one row each (default: every sampler of `ldm samplers`)" };
        var model = new Option<string?>("--model", "-m") { Description = "A diffusers model folder (default: the embedded model)" }.IsPath();
        var seed = new Option<long>("--seed") { Description = "Seed, the same for every cell", DefaultValueFactory = _ => 1 };
        var guidance = new Option<double>("--guidance", "--cfg") { Description = "Classifier-free guidance scale", DefaultValueFactory = _ => 7.5 }.InRange(Ranges.Guidance);
        var output = new Option<string>("--out", "-o") { Description = "The grid PNG", DefaultValueFactory = _ => "samplers.png" }.IsPath();
        var command = new Command("sampler-grid", "Compare the samplers: one prompt and seed at several step counts, a labelled row per sampler")
        {
            prompt, steps, samplers, model, seed, guidance, output,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(steps) is { } text && ParseSteps(text) is null)
                result.AddError($"{steps.Name} must be comma-separated step counts from 1 to {MaxSteps}, got '{text}'");
            if (result.GetValue(seed) < 0) result.AddError($"{seed.Name} must be at least 0, got {result.GetValue(seed)}");
            if (result.GetValue(samplers) is { } names)
                foreach (var name in Split(names).Where(n => !Samplers.TryGet(n, out _)))
                    result.AddError($"{samplers.Name}: unknown sampler '{name}' (known: {string.Join(", ", Samplers.Names)})");
        });
        command.SetAction((parsed, cancellation) =>
        {
            var stepCounts = ParseSteps(parsed.GetValue(steps)!)!;
            var rows = parsed.GetValue(samplers) is { } names ? Split(names).Select(Samplers.Get).ToList() : Samplers.All.ToList();
            var path = parsed.GetValue(output)!;
            if (!path.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--out must name a .png file, not {path}");
            using var pipe = ModelLoader.Load(DefaultModel.Resolve(parsed.GetValue(model)), "auto", new PipelineOptions()); // an ONNX folder runs on ONNX Runtime
            var cells = new List<IReadOnlyList<RgbImage>>();
            foreach (var sampler in rows)
            {
                var row = new List<RgbImage>();
                foreach (var count in stepCounts)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var request = new GenerationRequest
                    {
                        Prompt = parsed.GetValue(prompt)!,
                        Steps = count,
                        Sampler = sampler.Name,
                        Seed = (ulong)parsed.GetValue(seed),
                        GuidanceScale = parsed.GetValue(guidance),
                    };
                    using var result = pipe.TextToImage(request, cancellation: cancellation);
                    row.Add(result.Images[0]);
                }
                cells.Add(row);
                context.Err.WriteLine($"{sampler.Name}: {string.Join(", ", stepCounts)} steps");
            }
            var grid = LabelledGrid.Compose(cells, rows.Select(s => s.Name).ToArray(), stepCounts.Select(n => n.ToString(CultureInfo.InvariantCulture)).ToArray());
            var folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (folder is not null) Directory.CreateDirectory(folder);
            PngEncoder.Save(path, grid);
            context.Out.WriteLine($"wrote {path}: {rows.Count} samplers × {stepCounts.Count} step counts, {grid.Width}×{grid.Height}");
            return Task.FromResult(0);
        });
        return command;
    }

    private static IEnumerable<string> Split(string list) => list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    // A grid cell per sampler and count: more steps than a schedule of 1000 training timesteps has is no comparison.
    private const int MaxSteps = 1000;

    private static IReadOnlyList<int>? ParseSteps(string text)
    {
        var parts = Split(text).ToList();
        var counts = parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= MaxSteps ? n : 0).ToList();
        return parts.Count == 0 || counts.Contains(0) ? null : counts;
    }
}
