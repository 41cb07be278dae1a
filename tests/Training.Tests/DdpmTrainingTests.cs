using System.Text.Json.Nodes;
using LatentDiffusion.LatentUNet.ConvNeXt;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Training.Ddpm;
using LatentDiffusion.Training.Recipes;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

public class DdpmTrainingTests(ITestOutputHelper output)
{
    private static string Recipe(string name) => Path.Combine(SharedData.RepositoryRoot, "configs", "train", name);

    /// <summary>The tiny DDPM recipe (<see cref="TinyRecipes.Ddpm"/>).</summary>
    internal static DdpmRecipe Tiny(long maxSteps) => DdpmRecipe.Parse(TinyRecipes.Ddpm(maxSteps), "tiny.json");

    [Fact]
    public void TrainsResumesAndSavesThePipelineFolder()
    {
        var dir = TestDirectory.Create();
        var whole = TestDirectory.Create();
        try
        {
            // Interrupted at step 15 (checkpoint of step 10 on disk), then resumed to step 40 …
            using (var cts = new CancellationTokenSource())
            {
                var stop = SyncProgress.Of<TrainingProgress>(p => { if (p.Step == 15) cts.Cancel(); });
                var first = DdpmTraining.Run(Tiny(40), dir, progress: stop, cancellationToken: cts.Token);
                Assert.True(first.Cancelled);
            }
            var result = DdpmTraining.Run(Tiny(40), dir, resume: true);
            Assert.Equal(15, result.ResumedFrom);
            Assert.Equal(40, result.Step);
            output.WriteLine($"tiny DDPM: {result.StepsPerSecond:F1} it/s");

            // … equals an uninterrupted run bit for bit.
            DdpmTraining.Run(Tiny(40), whole);
            var resumedWeights = File.ReadAllBytes(Path.Combine(dir, "model", "unet", "diffusion_pytorch_model.safetensors"));
            var wholeWeights = File.ReadAllBytes(Path.Combine(whole, "model", "unet", "diffusion_pytorch_model.safetensors"));
            Assert.Equal(wholeWeights, resumedWeights);

            // The loss goes down: the last ten steps against the first ten.
            var losses = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();
            Assert.Equal(40, losses.Count);
            double early = losses.Take(10).Average(), late = losses.TakeLast(10).Average();
            output.WriteLine($"loss: first ten steps {early:F3}, last ten {late:F3}");
            Assert.True(late < 0.7 * early, $"the loss did not decrease: {early:F3} → {late:F3}");

            // The diffusers layout: model_index.json, unet/, scheduler/.
            var model = Path.Combine(dir, "model");
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "model_index.json")))!;
            Assert.Equal("DDPMPipeline", index["_class_name"]!.GetValue<string>());
            Assert.Equal("DDPMScheduler", index["scheduler"]![1]!.GetValue<string>());
            Assert.Equal("ConvNeXtUNet", index["unet"]![1]!.GetValue<string>());
            Assert.True(File.Exists(Path.Combine(model, "unet", "config.json")));
            var scheduler = SchedulerConfig.Load(Path.Combine(model, "scheduler"));
            Assert.IsType<DDPMSchedulerConfig>(scheduler);
            using (var unet = ConvNeXtUNet.FromPretrained(Path.Combine(model, "unet"))) Assert.Equal(4, unet.Config.Dim);

            Assert.True(File.Exists(Path.Combine(dir, "samples", "step-000020.png")));
            Assert.True(File.Exists(Path.Combine(dir, "samples", "step-000040.png")));
            Assert.True(File.Exists(Path.Combine(dir, "recipe.json")));
            Assert.Equal(["step-000030", "step-000040"], Directory.GetDirectories(Path.Combine(dir, "checkpoints")).Select(Path.GetFileName).Order());
        }
        finally
        {
            TestDirectory.Delete(dir);
            TestDirectory.Delete(whole);
        }
    }

    [Fact]
    public void CancellingDuringASampleGridSkipsItAndCheckpoints()
    {
        var dir = TestDirectory.Create();
        try
        {
            // 1000 DDPM steps per grid would take minutes; the cancelled grid stops at once.
            var recipe = Tiny(10) with
            {
                Sampling = new DdpmSamplingOptions { InferenceSteps = 1000 },
                Training = Tiny(10).Training with { SampleEvery = 3, CheckpointEvery = 0 },
            };
            using var cts = new CancellationTokenSource();
            var events = new List<string>();
            var progress = SyncProgress.Of<TrainingProgress>(p =>
            {
                if (p.Event is { } e) events.Add(e);
                else if (p.Step == 3) cts.Cancel();
            });
            var result = DdpmTraining.Run(recipe, dir, progress: progress, cancellationToken: cts.Token);
            Assert.True(result.Cancelled);
            Assert.Equal(3, result.Step);
            Assert.Equal(["samples skipped: cancelled", "checkpoint step-000003"], events);
            Assert.False(Directory.Exists(Path.Combine(dir, "samples")));
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void TheShippedPixelDdpmIsTheSmallRecipesModelAndDrawsVariedGarments()
    {
        var modelDir = Path.Combine(SharedData.RepositoryRoot, "models", "fashion-ddpm");
        var recipe = DdpmRecipe.Load(Recipe("ddpm-fashion-small.json")).Validate();
        using var pipeline = Pipeline.DdpmPipeline.FromPretrained(modelDir);
        using (var task = DdpmTraining.CreateTask(recipe))
            Assert.Equal(task.Model.ParameterCount, pipeline.UNet.ParameterCount);

        // 40 samples with the DDPM sampler at 100 steps (how its FID was measured), judged by the shipped classifier.
        using var scope = Torch.DisposeScope.Enter();
        using var noise = new Pipeline.Noise.GeneratorNoise(0);
        var nhwc = pipeline.Generate(new Pipeline.DdpmOptions(BatchSize: 40, Steps: 100), noise);
        var images = nhwc.Permute(0, 3, 1, 2) * 2 - 1;
        using var judge = Evaluation.Judge.LoadFashionClassifier(Path.Combine(SharedData.RepositoryRoot, "models", "judges", Evaluation.Judge.FashionClassifierName));
        var classes = judge.Classify(images).Classes;
        output.WriteLine(string.Join(", ", classes.GroupBy(c => c).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.True(classes.Distinct().Count() >= 7, $"only {classes.Distinct().Count()} classes among 40 samples");
        Assert.True(classes.GroupBy(c => c).Max(g => g.Count()) <= 16, "one class dominates the samples");
    }

    [Fact]
    public void TheShippedRecipesLoadAndValidate()
    {
        var convnext = DdpmRecipe.Load(Recipe("ddpm-fashion-convnext.json")).Validate();
        Assert.Equal(32, convnext.Data.ImageSize);
        Assert.Equal(32, convnext.Model.Config!["dim"]!.GetValue<int>()); // config_file inlined
        using (var task = DdpmTraining.CreateTask(convnext))
        {
            Assert.Equal(4, task.Denoiser.DownsamplingFactor);
            Assert.Equal(4_147_905, task.Model.ParameterCount);
        }
        var unet = DdpmRecipe.Load(Recipe("ddpm-fashion-unet2d.json")).Validate();
        Assert.Equal("unet2d", unet.Model.Type);
        Assert.Equal(1000, unet.SchedulerConfig().NumTrainTimesteps);
        using (var task = DdpmTraining.CreateTask(unet))
        {
            Assert.Equal(4, task.Denoiser.DownsamplingFactor);
            Assert.True(task.Denoiser.IsDiffusersCompatible);
        }
        Assert.Equal(20_000, Toy.ToyRecipe.Load(Recipe("toy-s-curve.json")).Training.MaxSteps);
    }

    [Fact]
    public void AUNet2DModelRunLoadsInTheDdpmPipeline()
    {
        var dir = TestDirectory.Create();
        try
        {
            var recipe = DdpmRecipe.Parse("""
                {
                  "model": { "type": "unet2d", "config": {
                    "sample_size": 32, "in_channels": 1, "out_channels": 1, "layers_per_block": 1, "block_out_channels": [8, 16],
                    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
                    "norm_num_groups": 4, "attention_head_dim": 8 } },
                  "data": { "type": "fashion-mnist", "image_size": 32, "limit": 16 },
                  "sampling": { "inference_steps": 3 },
                  "training": { "max_steps": 6, "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 3, "sample_every": 0, "sample_count": 2 }
                }
                """, "unet2d.json");
            var result = DdpmTraining.Run(recipe, dir);
            output.WriteLine($"tiny UNet2DModel: {result.StepsPerSecond:F1} it/s");
            var model = Path.Combine(dir, "model");
            Assert.Equal("UNet2DModel", Torch.Config.ConfigJson.ClassName(Path.Combine(model, "unet", "config.json")));
            Assert.Equal("diffusers", JsonNode.Parse(File.ReadAllText(Path.Combine(model, "model_index.json")))!["unet"]![0]!.GetValue<string>());
            // The project's own DDPMPipeline, which reads diffusers' folders, loads and runs it.
            using var pipeline = Pipeline.DdpmPipeline.FromPretrained(model);
            Assert.IsType<DDPMScheduler>(pipeline.Scheduler);
            Assert.Equal(1, pipeline.UNet.Config.InChannels);
            Assert.True(File.Exists(Path.Combine(dir, "samples", "step-000006.png")));
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Theory]
    [InlineData("\"training\": { \"bach_size\": 8 }", "unknown field 'training.bach_size'")]
    [InlineData("\"training\": { \"batch_size\": 0 }", "'training.batch_size' must be positive")]
    [InlineData("\"training\": { \"max_steps\": 0 }", "'training.max_steps' must be positive")]
    [InlineData("\"training\": { \"loss\": \"l3\" }", "training.loss")]
    [InlineData("\"training\": { \"device\": \"gpu\" }", "'training.device' must be cpu, cuda or cuda:N")]
    [InlineData("\"data\": { \"image_size\": 30 }", "'data.image_size' (30) must be a multiple of the U-Net's total downsampling (4)")]
    [InlineData("\"data\": { \"type\": \"cifar\" }", "'data.type'")]
    [InlineData("\"noise_scheduler\": { \"beta_schedul\": \"linear\" }", "beta_schedul")]
    [InlineData("\"noise_scheduler\": { \"prediction_type\": \"v_prediction\" }", "must be epsilon")]
    [InlineData("\"sampling\": { \"inference_steps\": 2000 }", "cannot exceed")]
    [InlineData("\"model\": { \"type\": \"convnext\", \"config\": { \"dim\": 8, \"dim_mult\": [1] } }", "'dim_mult'")]
    public void ImpossibleRecipesGiveOneClearError(string section, string expected)
    {
        var baseRecipe = JsonNode.Parse("""
            { "model": { "type": "convnext", "config": { "dim": 8, "dim_mults": [1, 2, 4], "channels": 1, "sample_size": 32 } } }
            """)!.AsObject();
        var patch = JsonNode.Parse("{" + section + "}")!.AsObject();
        foreach (var (key, value) in patch.ToList())
        {
            patch.Remove(key);
            baseRecipe[key] = value;
        }
        var e = Assert.Throws<RecipeException>(() =>
        {
            using var task = DdpmTraining.CreateTask(DdpmRecipe.Parse(baseRecipe.ToJsonString(), "bad.json"));
        });
        output.WriteLine(e.Message);
        Assert.StartsWith("bad.json", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
