using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// One file of a copied model folder mutated, then the folder loaded with <see cref="StableDiffusionPipeline.FromPretrained"/>
/// and one image generated with 2 steps at the model's size. Correct: a finite image of that size.
/// </summary>
internal static class ModelFuzzTarget
{
    private static readonly string[] ConfigFiles = ["unet/config.json", "vae/config.json", "text_encoder/config.json", "model_index.json"];
    private static readonly string[] TokenizerFiles = ["tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"];
    private static readonly string[] WeightFiles = ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"];

    public static (string Mutation, FuzzOutcome Outcome, string Message) Run(FuzzFamily family, FuzzRandom random, FuzzSources sources, FuzzScope scope, string work)
    {
        var model = random.Pick(sources.Models);
        var relative = family switch
        {
            FuzzFamily.Config => scope.ComponentConfigs ? random.Pick(ConfigFiles) : "model_index.json",
            FuzzFamily.Scheduler => "scheduler/scheduler_config.json",
            FuzzFamily.Tokenizer => random.Pick(scope.TokenizerConfigs ? TokenizerFiles : TokenizerFiles[..2]),
            _ => random.Pick(WeightFiles),
        };
        var folder = Path.Combine(work, Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Path)));
        CopyFolder(model.Path, folder);
        var file = Path.Combine(folder, relative);
        var original = File.ReadAllBytes(file);
        var mutated = relative.EndsWith(".safetensors", StringComparison.Ordinal) ? SafeTensorsMutator.Mutate(original, random, dataMutations: false)
            : relative.EndsWith(".txt", StringComparison.Ordinal) ? TextMutator.Mutate(original, random)
            : JsonMutator.Mutate(original, random);
        File.WriteAllBytes(file, mutated.Data);
        var mutation = $"{relative}: {mutated.Description}";

        // A component's config.json that no longer matches its weights is reported, rightly, by the weights file
        // ("…/vae/diffusion_pytorch_model.safetensors: … shape mismatches: …"): that names the file to look at too.
        var weights = relative.EndsWith("/config.json", StringComparison.Ordinal)
            ? WeightFiles.Where(w => w.StartsWith(relative[..relative.IndexOf('/')], StringComparison.Ordinal)).Select(w => w.Replace("/", Path.DirectorySeparatorChar.ToString(), StringComparison.Ordinal)).FirstOrDefault()
            : null;
        var (outcome, message) = Generate(folder, model.Size, random.Next(1000), [Path.GetFileName(file), mutated.Field, weights]);
        if (outcome != FuzzOutcome.Bug && FuzzVerdict.Leftover(folder) is { } leftover) (outcome, message) = (FuzzOutcome.Bug, $"left {leftover}");
        return (mutation, outcome, message);
    }

    private static (FuzzOutcome, string) Generate(string folder, int size, int seed, string?[] names)
    {
        try
        {
            using var pipe = StableDiffusionPipeline.FromPretrained(folder);
            var request = new GenerationRequest { Prompt = "a red dress", Steps = 2, Seed = (ulong)seed, Width = size, Height = size };
            pipe.Validate(request);
            using var result = pipe.TextToImage(request);
            return Check(result, size);
        }
        catch (Exception e)
        {
            return FuzzVerdict.OfException(e, names);
        }
    }

    /// <summary>A correct result: one image of the requested size whose pixels and latents are all finite.</summary>
    public static (FuzzOutcome, string) Check(GenerationResult result, int size)
    {
        if (result.Images.Count != 1 || result.Images[0].Width != size || result.Images[0].Height != size)
            return (FuzzOutcome.Bug, $"expected one {size}x{size} image, got {string.Join(", ", result.Images)}");
        if (!AllFinite(result.Pixels) || !AllFinite(result.Latents)) return (FuzzOutcome.Bug, "the image is not finite (NaN or infinity)");
        return (FuzzOutcome.Ok, $"{size}x{size} image");
    }

    private static bool AllFinite(Tensor t)
    {
        using var scope = DisposeScope.Enter();
        return double.IsFinite(t.Abs().Sum().Item());
    }

    // Copies a model folder; only the one mutated file is rewritten afterwards.
    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            if (file.EndsWith(".md", StringComparison.Ordinal) || Path.GetFileName(file).StartsWith("evaluation", StringComparison.Ordinal)) continue;
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
        foreach (var dir in Directory.GetDirectories(from)) CopyFolder(dir, Path.Combine(to, Path.GetFileName(dir)));
    }
}
