using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Lora;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>LoRA fine-tuning of the tiny golden Stable Diffusion model on a kohya-style captioned folder.</summary>
public sealed class LoraTrainingTests : IDisposable
{
    private readonly string dir = TestDirectory.Create();
    private readonly string model;
    private readonly string data;

    public LoraTrainingTests()
    {
        model = TinyStableDiffusionFolder.Assemble(Path.Combine(dir, "model"));
        data = Path.Combine(dir, "data");
        var subject = Directory.CreateDirectory(Path.Combine(data, "2_subject")).FullName;
        RgbImage.Filled(80, 64, new Rgb(200, 30, 160)).SavePng(Path.Combine(subject, "a.png"));
        File.WriteAllText(Path.Combine(subject, "a.txt"), "a magenta horse");
        RgbImage.Filled(64, 96, new Rgb(20, 200, 60)).SavePng(Path.Combine(subject, "b.png"));
        File.WriteAllText(Path.Combine(subject, "b.txt"), "a green horse\n");
    }

    public void Dispose() => TestDirectory.Delete(dir);

    private LoraRecipe Recipe(long maxSteps, string moreData = "") => LoraRecipe.Parse($$"""
        {
          "model": {{System.Text.Json.JsonSerializer.Serialize(model)}},
          "network": { "rank": 2, "alpha": 1, "train_text_encoder": true },
          "data": { "folder": {{System.Text.Json.JsonSerializer.Serialize(data)}}, "resolution": 64{{moreData}} },
          "sampling": { "steps": 1, "guidance_scale": 3, "prompts": ["a magenta horse"] },
          "training": {
            "max_steps": {{maxSteps}}, "batch_size": 2, "learning_rate": 0.01, "lr_schedule": "constant", "warmup_steps": 0,
            "ema": null, "checkpoint_every": 2, "sample_every": 0, "log_every": 1, "seed": 3
          }
        }
        """, "tiny-lora.json");

    [Fact]
    public void TheFolderRepeatsEachImageAsItsPrefixSays()
    {
        var dataset = new KohyaFolderDataset(data, 64);
        Assert.Equal(4, dataset.Count);
        using var batch = dataset.GetBatch([0, 1, 2, 3], 0);
        Assert.Equal(["a magenta horse", "a magenta horse", "a green horse", "a green horse"], batch.Captions);
        Assert.Equal([4L, 3, 64, 64], batch.Data.Shape);
    }

    [Fact]
    public void TrainsResumesExactlyAndWritesAKohyaFileThatOurLoaderMerges()
    {
        var whole = Path.Combine(dir, "whole");
        var result = LoraTraining.Run(Recipe(4), whole);
        Assert.Equal(4, result.Step);
        var saved = Path.Combine(whole, "model", "tiny-lora.safetensors");

        // Interrupted after step 3 (checkpoint of step 2 on disk, one written on the way out), then resumed to 4: the same file.
        var split = Path.Combine(dir, "split");
        using (var cts = new CancellationTokenSource())
        {
            var first = LoraTraining.Run(Recipe(4), split, progress: SyncProgress.Of<TrainingProgress>(p => { if (p.Step == 3) cts.Cancel(); }), cancellationToken: cts.Token);
            Assert.True(first.Cancelled);
        }
        var resumed = LoraTraining.Run(Recipe(4), split, resume: true);
        Assert.Equal(3, resumed.ResumedFrom);
        Assert.Equal(File.ReadAllBytes(saved), File.ReadAllBytes(Path.Combine(split, "model", "tiny-lora.safetensors")));

        // The file is what kohya writes: its attention keys are those of the golden kohya file, which diffusers' converter accepted.
        using var file = LoraFile.Load(saved);
        Assert.Empty(file.UnknownKeys);
        var names = file.Modules.Select(m => m.Name).ToHashSet();
        using var golden = SafeTensorsFile.Open(Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "pipeline", "lora", "sd_tiny_lora_kohya.safetensors"));
        var goldenAttention = golden.Keys.Where(k => k.EndsWith(".lora_down.weight", StringComparison.Ordinal))
            .Select(k => k[..^".lora_down.weight".Length])
            .Where(n => LoraNetwork.UnetTargets.Concat(LoraNetwork.TextEncoderTargets).Any(t => n.EndsWith("_" + t.Replace('.', '_'), StringComparison.Ordinal)));
        Assert.Subset(names, goldenAttention.ToHashSet());
        Assert.All(file.Modules, m => Assert.Equal(0.5, m.AlphaScale));
        Assert.Contains(file.Modules, m => m.Up.Abs().Sum().ItemFloat() > 0);

        // Merged by the loader = the adapters running beside the frozen layers (the training forward).
        using var task = LoraTraining.CreateTask(Recipe(4));
        using (var weights = new DisposableDictionary(SafeTensorsFile.LoadFile(saved))) task.Network.LoadStateDict(weights.Items);
        using var pipe = StableDiffusionPipeline.FromPretrained(model);
        Assert.Empty(pipe.Loras.Apply([new LoraSelection(pipe.Loras.Load(saved))]));
        using var scope = DisposeScope.Enter();
        using var inference = Autograd.InferenceMode();
        using var g = new Generator(1);
        var x = Tensors.Randn([1, 4, 8, 8], g);
        var ids = Tensor.From(pipe.Tokenizer.Encode("a magenta horse").InputIdsInt64(), 1, 77);
        var unmerged = task.Base.Unet.Forward(x, 500, task.Base.TextEncoder.EncodePrompt(ids));
        var merged = pipe.Unet.Forward(x, 500, pipe.TextEncoder.EncodePrompt(ids));
        TensorAssert.Close(merged, unmerged, 1e-5, 1e-4, "merged vs unmerged LoRA");
    }

    [Fact]
    public void TrainsOnAspectRatioBucketsAndResumesExactly()
    {
        // a third shape: 80×64 → bucket 64×64, 64×96 → 48×80, 120×40 → 96×32 (3 repeats: its second batch is filled up)
        var other = Directory.CreateDirectory(Path.Combine(data, "3_other")).FullName;
        RgbImage.Filled(120, 40, new Rgb(30, 60, 220)).SavePng(Path.Combine(other, "c.png"));
        File.WriteAllText(Path.Combine(other, "c.txt"), "a blue horse");
        LoraRecipe Bucketed(long steps) => Recipe(steps, """, "enable_bucket": true, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 16""");

        var whole = Path.Combine(dir, "bucketed-whole");
        var result = LoraTraining.Run(Bucketed(6), whole);
        Assert.True(double.IsFinite(result.LastLoss));
        var saved = Path.Combine(whole, "model", "tiny-lora.safetensors");

        var split = Path.Combine(dir, "bucketed-split");
        using (var cts = new CancellationTokenSource())
            Assert.True(LoraTraining.Run(Bucketed(6), split, progress: SyncProgress.Of<TrainingProgress>(p => { if (p.Step == 3) cts.Cancel(); }), cancellationToken: cts.Token).Cancelled);
        Assert.Equal(3, LoraTraining.Run(Bucketed(6), split, resume: true).ResumedFrom);
        Assert.Equal(File.ReadAllBytes(saved), File.ReadAllBytes(Path.Combine(split, "model", "tiny-lora.safetensors")));

        // On fixed data (a batch of each bucket, the same noise and timesteps), the trained adapters lower the loss.
        var dataset = Assert.IsType<KohyaFolderDataset>(Bucketed(6).OpenDataset());
        Assert.Equal(3, dataset.Buckets!.Count);
        using var task = LoraTraining.CreateTask(Bucketed(6));
        double FixedLoss()
        {
            using var scope = DisposeScope.Enter();
            using var inference = Autograd.InferenceMode();
            using var g = new Generator(11);
            return dataset.Buckets!.Sum(bucket =>
            {
                using var batch = dataset.GetBatch(bucket[..2], 0);
                return (double)task.ComputeLoss(batch, g).ItemFloat();
            });
        }
        double before = FixedLoss();
        using (var weights = new DisposableDictionary(SafeTensorsFile.LoadFile(saved))) task.Network.LoadStateDict(weights.Items);
        double after = FixedLoss();
        Assert.True(double.IsFinite(before) && double.IsFinite(after), $"losses {before}, {after}");
        Assert.True(after < before, $"the loss on fixed data went from {before} to {after}");
    }

    [Fact]
    public void ResumingWithOtherBucketSettingsIsRefusedNamingTheSettingAndBothValues()
    {
        static string Buckets(int min = 32, int max = 128, int steps = 16, bool noUpscale = false) =>
            $", \"enable_bucket\": true, \"min_bucket_reso\": {min}, \"max_bucket_reso\": {max}, \"bucket_reso_steps\": {steps}, \"bucket_no_upscale\": {(noUpscale ? "true" : "false")}";
        var output = Path.Combine(dir, "bucketed");
        Assert.Equal(2, LoraTraining.Run(Recipe(2, Buckets()), output).Step);
        var checkpoint = Path.Combine(output, "checkpoints", "step-000002");
        string Refusal(string moreData) =>
            Assert.Throws<Recipes.RecipeException>(() => LoraTraining.Run(Recipe(2, moreData), output, resume: true)).Message;
        string Expected(string what) =>
            $"cannot resume from {checkpoint}: it was made with {what}; restore the recipe or start a new output folder";

        Assert.Equal(Expected("bucket_reso_steps 16, the recipe now gives 32"), Refusal(Buckets(steps: 32)));
        Assert.Equal(Expected("min_bucket_reso 32, the recipe now gives 64"), Refusal(Buckets(min: 64)));
        Assert.Equal(Expected("max_bucket_reso 128, the recipe now gives 96"), Refusal(Buckets(max: 96)));
        Assert.Equal(Expected("bucket_no_upscale false, the recipe now gives true"), Refusal(Buckets(noUpscale: true)));
        Assert.Equal(Expected("enable_bucket true, the recipe now gives false"), Refusal(""));
        // the same settings resume (nothing left to train: the run is complete)
        Assert.Equal(2, LoraTraining.Run(Recipe(2, Buckets()), output, resume: true).ResumedFrom);

        // and the other way round: a square-crop run does not resume with buckets
        var square = Path.Combine(dir, "square");
        LoraTraining.Run(Recipe(2), square);
        var e = Assert.Throws<Recipes.RecipeException>(() => LoraTraining.Run(Recipe(2, Buckets()), square, resume: true));
        Assert.Equal($"cannot resume from {Path.Combine(square, "checkpoints", "step-000002")}: it was made with enable_bucket false, the recipe now gives true; " +
            "restore the recipe or start a new output folder", e.Message);
    }

    [Fact]
    public void BucketStepsTheUNetCannotHalveEvenlyAreRefused()
    {
        // the tiny model: VAE factor 8, a U-Net of two levels (one downsampling), so bucket sides must be multiples of 16
        var e = Assert.Throws<Recipes.RecipeException>(() => LoraTraining.Run(
            Recipe(2, """, "enable_bucket": true, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 8"""), Path.Combine(dir, "steps-8")));
        Assert.Equal("tiny-lora.json: 'data.bucket_reso_steps' must be a multiple of 16 for this model (the VAE's factor 8 × 2^1, the U-Net's downsamplings; got 8)",
            e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir, "steps-8", "checkpoints")));
    }

    private sealed class DisposableDictionary(Dictionary<string, Tensor> items) : IDisposable
    {
        public Dictionary<string, Tensor> Items => items;

        public void Dispose()
        {
            foreach (var t in items.Values) t.Dispose();
        }
    }
}

/// <summary>The committed LoRA recipe parses, validates and builds its adapters on the embedded model.</summary>
public sealed class LoraRecipeTests
{
    [Fact]
    public void TheCommittedRecipeBuildsAdaptersOnTheEmbeddedModel()
    {
        var recipe = LoraRecipe.Load(Path.Combine(SharedData.RepositoryRoot, "configs", "train", "lora-fashion-magenta.json")).Validate();
        using var task = LoraTraining.CreateTask(recipe);
        var keys = task.Network.StateDict().Keys.ToList();
        Assert.Contains(keys, k => k.StartsWith("lora_unet_", StringComparison.Ordinal) && k.EndsWith("attn2_to_k.lora_down.weight", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("lora_te_text_model_encoder_layers_0_self_attn_q_proj.", StringComparison.Ordinal));
        Assert.All(task.Network.Parameters(), p => Assert.True(p.RequiresGrad));
        Assert.All(task.Base.Parameters(), p => Assert.False(p.RequiresGrad));
    }

    [Fact]
    public void AMissingFieldOrBadValueIsOneLineNamingIt()
    {
        var e = Assert.Throws<Recipes.RecipeException>(() => LoraRecipe.Parse("""{ "data": { "folder": "x" } }""", "r.json").Validate());
        Assert.Equal("r.json: 'model' is required (a Stable Diffusion folder or .safetensors file)", e.Message);
        e = Assert.Throws<Recipes.RecipeException>(() => LoraRecipe.Parse("""{ "model": "m", "data": { "folder": "x" }, "network": { "rank": 0 } }""", "r.json").Validate());
        Assert.Equal("r.json: 'network.rank' must be at least 1 (got 0)", e.Message);
        e = Assert.Throws<Recipes.RecipeException>(() => LoraRecipe.Parse("""{ "model": "m", "netwrk": {} }""", "r.json"));
        Assert.Equal("r.json: unknown field 'netwrk'", e.Message);
    }
}
