using System.Text.Json.Nodes;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;
using LatentDiffusion.Training.Vae;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

/// <summary>The VAE's PatchGAN discriminator on the shared trainer: a tiny VAE on 64 Fashion colours items.</summary>
[Collection(LiveTensorCount.Name)]
public class VaeGanTrainingTests(ITestOutputHelper output)
{
    private static readonly string[] AdversarialMetrics = ["d_loss", "d_weight", "logits_real", "logits_fake"];

    /// <summary>The tiny VAE recipe plus an 8-channel, 2-layer discriminator that joins after <paramref name="start"/> steps.</summary>
    private static VaeRecipe TinyGan(long maxSteps, long start) => VaeTrainingTests.Tiny(maxSteps) with
    {
        Discriminator = new VaeDiscriminatorOptions { DiscStart = start, DiscNdf = 8, DiscNumLayers = 2, DiscWeight = 0.5 },
    };

    private static Dictionary<string, byte[]> Bytes(Module module) => module.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToBytes());

    private static bool Same(Dictionary<string, byte[]> a, Dictionary<string, byte[]> b) =>
        a.Keys.Order().SequenceEqual(b.Keys.Order()) && a.All(kv => kv.Value.AsSpan().SequenceEqual(b[kv.Key]));

    /// <summary>Trains <paramref name="recipe"/> on the trainer alone (no final PSNR) and returns the VAE's and the discriminator's weights.</summary>
    private static (Dictionary<string, byte[]> Vae, Dictionary<string, byte[]> Discriminator) Train(VaeRecipe recipe, string dir,
        IProgress<TrainingProgress>? progress = null, bool resume = false)
    {
        using var task = VaeTraining.CreateTask(recipe);
        new Trainer(recipe.Training, dir).Run(task, task.TrainData, resume, progress);
        return (Bytes(task.Vae), task.Adversary is { } a ? Bytes(a.Discriminator) : []);
    }

    private static List<JsonObject> Metrics(string dir) =>
        File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void TheDiscriminatorJoinsAfterDiscStartStepsAndIsLoggedAndCheckpointed()
    {
        var plainDir = TestDirectory.Create();
        var beforeDir = TestDirectory.Create();
        var ganDir = TestDirectory.Create();
        try
        {
            Dictionary<string, byte[]> initial;
            using (var fresh = VaeTraining.CreateTask(TinyGan(2, start: 2))) initial = Bytes(fresh.Adversary!.Discriminator);

            // Up to disc_start the run is the plain VAE's, bit for bit, and the discriminator is untouched.
            var plain = Train(VaeTrainingTests.Tiny(2), plainDir);
            var before = Train(TinyGan(2, start: 2), beforeDir);
            Assert.True(Same(plain.Vae, before.Vae), "the VAE differs from the plain run before disc_start");
            Assert.True(Same(initial, before.Discriminator), "the discriminator changed before disc_start");
            Assert.DoesNotContain(Metrics(beforeDir), m => m.ContainsKey("d_loss"));

            // From step 3 on it trains; the live tensor count stays flat over the adversarial steps.
            var live = new Dictionary<long, long>();
            var reports = new List<TrainingProgress>();
            var gan = Train(TinyGan(8, start: 2), ganDir, SyncProgress.Of<TrainingProgress>(p =>
            {
                if (p.Event is not null) return;
                live[p.Step] = Tensor.LiveCount;
                reports.Add(p);
            }));
            Assert.False(Same(initial, gan.Discriminator), "the discriminator did not change after disc_start");
            var lines = Metrics(ganDir);
            Assert.Equal(8, lines.Count);
            Assert.All(lines.Take(2), m => Assert.DoesNotContain("d_loss", m.Select(p => p.Key)));
            foreach (var line in lines.Skip(2))
            {
                Assert.Equal(["step", "epoch", "loss", "lr", "grad_norm", .. AdversarialMetrics, "it_per_s", "elapsed_s"], line.Select(p => p.Key));
                Assert.All(AdversarialMetrics, name => Assert.True(double.IsFinite(line[name]!.GetValue<double>()), $"{name} is not finite"));
                Assert.True(line["d_weight"]!.GetValue<double>() > 0);
                output.WriteLine(line.ToJsonString());
            }
            Assert.Null(reports[1].Metrics);
            Assert.Equal(AdversarialMetrics, reports[^1].Metrics!.Select(m => m.Key));
            var slack = 2 * (TinyGan(8, 2).Training.PrefetchBatches + 1);
            Assert.True(live[8] <= live[4] + slack, $"live tensors grew from {live[4]} (step 4) to {live[8]} (step 8)");

            var checkpoint = new CheckpointStore(Path.Combine(ganDir, "checkpoints")).Latest()!.Value.Path;
            Assert.True(CheckpointStore.ReadState(checkpoint).HasDiscriminator);
            using var file = Torch.SafeTensors.SafeTensorsFile.Open(Path.Combine(checkpoint, CheckpointStore.TensorsFile));
            Assert.Contains("discriminator.main.0.weight", file.Keys);
            Assert.Contains("discriminator.main.3.running_var", file.Keys);
            Assert.Contains("discriminator_optimizer.state.0.exp_avg_sq", file.Keys);
            Assert.Contains("model.decoder.conv_out.weight", file.Keys);
        }
        finally
        {
            TestDirectory.Delete(plainDir);
            TestDirectory.Delete(beforeDir);
            TestDirectory.Delete(ganDir);
        }
    }

    /// <summary>A discriminator that answers fixed logits: <paramref name="real"/>'s for the real images, <paramref name="fake"/>'s for anything else.</summary>
    private sealed class FixedLogits(Tensor images, Tensor real, Tensor fake) : Module<Tensor, Tensor>
    {
        public override Tensor Forward(Tensor input) => input.Equal(images) ? real.Clone() : fake + input.Mean() * 0.0;
    }

    private static (VaeTask Task, Batch Batch) TaskWith(VaeRecipe recipe, Func<Batch, Module<Tensor, Tensor>> discriminator)
    {
        var train = recipe.Data.OpenTrain(null, recipe.Source);
        var batch = train.GetBatch([0, 1], 0);
        using var generator = new Generator(3);
        var options = recipe.Discriminator! with { LearningRate = 1e-3 };
        var task = new VaeTask(new AutoencoderKL(recipe.ModelConfig(), generator), recipe.Loss, recipe.Evaluation, train,
            recipe.Data.OpenTest(null, recipe.Source), 2, discriminator(batch), options);
        return (task, batch);
    }

    /// <summary>‖∇_{conv_out} loss‖ by an ordinary backward pass (independent of the task's autograd.grad).</summary>
    private static double GradientNorm(VaeTask task, Tensor loss)
    {
        var weight = task.Vae.Decoder.ConvOut.Weight;
        weight.ZeroGrad();
        loss.Backward(retainGraph: true);
        using var grad = weight.Grad!;
        var norm = grad.Norm().Item();
        weight.ZeroGrad();
        return norm;
    }

    [Fact]
    public void HingeLossLogitsAndAdaptiveWeightOnFixedLogitsMatchAHandComputation()
    {
        var recipe = TinyGan(1, start: 0) with { Discriminator = TinyGan(1, 0).Discriminator! with { DiscFactor = 0.5 } };
        using var real = Tensor.From([2f, 0.5f, -1f, 0f], 2, 1, 1, 2);
        using var fake = Tensor.From([-2f, 0.5f, 1f, 0f], 2, 1, 1, 2);
        var (task, batch) = TaskWith(recipe, b => new FixedLogits(b.Data, real, fake));
        using var _ = task;
        using var __ = batch;
        using var scope = DisposeScope.Enter();

        using var noise = new Generator(5);
        using var sameNoise = new Generator(5);
        using var unused = new Generator(6);
        var loss = task.ComputeAdversarialLoss(batch, noise);
        var dLoss = task.ComputeDiscriminatorLoss(unused);
        var m = task.StepMetrics.ToDictionary(kv => kv.Key, kv => kv.Value);
        // mean ReLU(1 − real) = (0 + 0.5 + 2 + 1) / 4, mean ReLU(1 + fake) = (0 + 1.5 + 2 + 1) / 4; hinge = ½ (0.875 + 1.125) = 1, × disc_factor 0.5.
        Assert.Equal(0.5, dLoss.Item(), 6);
        Assert.Equal(0.5, m["d_loss"], 6);
        Assert.Equal(0.375, m["logits_real"], 6);
        Assert.Equal(-0.125, m["logits_fake"], 6);

        // D(x̂) does not depend on x̂ here, so ‖∇g‖ = 0 and λ = disc_weight · min(‖∇rec‖ / 10⁻⁴, 10⁴).
        var plain = task.ComputeLoss(batch, sameNoise);
        var recNorm = GradientNorm(task, plain);
        Assert.True(recNorm > 0);
        var expected = 0.5 * Math.Min(recNorm / 1e-4, 1e4);
        Assert.Equal(expected, m["d_weight"], expected * 1e-5);
        // The adversarial loss is the plain one plus λ · disc_factor · g, g = −mean(fake) = 0.125.
        Assert.Equal(plain.Item() + m["d_weight"] * 0.5 * 0.125, loss.Item(), 1e-5 * (1 + m["d_weight"]));
        Assert.Throws<InvalidOperationException>(() => task.ComputeDiscriminatorLoss(unused));
    }

    [Fact]
    public void AdaptiveWeightWithAPatchGanIsTheRatioOfBackwardGradientNorms()
    {
        var recipe = TinyGan(1, start: 0);
        using var init = new Generator(4);
        var (task, batch) = TaskWith(recipe, _ => recipe.Discriminator!.Create(3, init));
        using var _ = task;
        using var __ = batch;
        using var scope = DisposeScope.Enter();

        using var noise = new Generator(5);
        using var sameNoise = new Generator(5);
        using var unused = new Generator(6);
        task.ComputeAdversarialLoss(batch, noise);
        task.ComputeDiscriminatorLoss(unused);
        var weight = task.StepMetrics.Single(m => m.Key == "d_weight").Value;

        // The same forward pass by hand (same ε), each gradient by its own backward pass.
        var d = (Module<Tensor, Tensor>)task.Adversary!.Discriminator;
        using var posterior = task.Vae.Encode(batch.Data);
        var reconstruction = task.Vae.Decode(posterior.Sample(TrainingRandom.RandnLike(posterior.Mean, sameNoise)));
        var rec = VaeLosses.Reconstruction(batch.Data, reconstruction).Mean();
        var g = VaeLosses.GeneratorLoss(d.Forward(reconstruction));
        var expected = 0.5 * Math.Clamp(GradientNorm(task, rec) / (GradientNorm(task, g) + 1e-4), 0, 1e4);
        output.WriteLine($"λ = {weight:G6} (by backward passes: {expected:G6})");
        Assert.True(expected > 0 && expected < 0.5e4);
        Assert.Equal(expected, weight, expected * 1e-5);
    }

    private sealed class KillAt(long step) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Step == step && value.Event is null) throw new SimulatedKill();
        }
    }

    private sealed class SimulatedKill : Exception;

    [Fact]
    public void ResumingBeforeAndAfterDiscStartIsBitExact()
    {
        var whole = TestDirectory.Create();
        var killed = TestDirectory.Create();
        try
        {
            var recipe = TinyGan(6, start: 3) with
            {
                Training = TinyGan(6, 3).Training with { CheckpointEvery = 2, Ema = new EmaOptions { Decay = 0.9 } },
            };
            VaeTraining.Run(recipe, whole);
            // Killed at step 3: resumed from step 2, before the discriminator starts (its optimiser has no state yet).
            Assert.Throws<SimulatedKill>(() => VaeTraining.Run(recipe, killed, progress: new KillAt(3)));
            // Killed at step 5: resumed from step 4, one adversarial step in.
            Assert.Throws<SimulatedKill>(() => VaeTraining.Run(recipe, killed, resume: true, progress: new KillAt(5)));
            var result = VaeTraining.Run(recipe, killed, resume: true);
            Assert.Equal(4, result.Training.ResumedFrom);

            // The last checkpoint holds everything (VAE, EMA, both optimisers, discriminator with its batch-norm statistics, generator state).
            var last = Path.Combine("checkpoints", CheckpointStore.Name(6), CheckpointStore.TensorsFile);
            Assert.Equal(File.ReadAllBytes(Path.Combine(whole, last)), File.ReadAllBytes(Path.Combine(killed, last)));
            var exported = Path.Combine("model", "diffusion_pytorch_model.safetensors");
            Assert.Equal(File.ReadAllBytes(Path.Combine(whole, exported)), File.ReadAllBytes(Path.Combine(killed, exported)));
            Assert.Equal([1.0, 2, 3, 4, 5, 6], Metrics(killed).Select(m => m["step"]!.GetValue<double>()));
            Assert.Equal([false, false, false, true, true, true], Metrics(killed).Select(m => m.ContainsKey("d_loss")));
        }
        finally
        {
            TestDirectory.Delete(whole);
            TestDirectory.Delete(killed);
        }
    }

    [Fact]
    public void ResumingRefusesToAddOrDropTheDiscriminator()
    {
        var plain = TestDirectory.Create();
        var gan = TestDirectory.Create();
        try
        {
            Train(VaeTrainingTests.Tiny(1), plain);
            var added = Assert.Throws<RecipeException>(() => Train(TinyGan(2, start: 0), plain, resume: true));
            Assert.Contains("the discriminator off, the recipe now gives on", added.Message);
            Train(TinyGan(1, start: 0), gan);
            var dropped = Assert.Throws<RecipeException>(() => Train(VaeTrainingTests.Tiny(2), gan, resume: true));
            Assert.Contains("the discriminator on, the recipe now gives off", dropped.Message);
        }
        finally
        {
            TestDirectory.Delete(plain);
            TestDirectory.Delete(gan);
        }
    }
}

public class VaeGanRecipeTests
{
    private static string Recipe(string name) => Path.Combine(SharedData.RepositoryRoot, "configs", "train", name);

    private static string ErrorOf(string section) =>
        Assert.Throws<RecipeException>(() => VaeRecipe.Parse($$"""{ "discriminator": {{section}} }""", "gan.json").Validate()).Message;

    [Theory]
    [InlineData("""{ "disc_start": 1, "disc_strat": 2 }""", "gan.json: unknown field 'discriminator.disc_strat'")]
    [InlineData("""{ }""", "gan.json: 'discriminator.disc_start' is required")]
    [InlineData("""{ "disc_start": -1 }""", "gan.json: 'discriminator.disc_start' must not be negative (got -1)")]
    [InlineData("""{ "disc_start": 0, "disc_weight": -0.5 }""", "gan.json: 'discriminator.disc_weight' must be a non-negative number (got -0.5)")]
    [InlineData("""{ "disc_start": 0, "disc_factor": -1 }""", "gan.json: 'discriminator.disc_factor' must be a non-negative number (got -1)")]
    [InlineData("""{ "disc_start": 0, "disc_num_layers": 0 }""", "gan.json: 'discriminator.disc_num_layers' must be at least 1 (got 0)")]
    [InlineData("""{ "disc_start": 0, "disc_num_layers": 4 }""", "gan.json: 'discriminator.disc_num_layers' 4 leaves no patch of a 32×32 image (at most 3)")]
    [InlineData("""{ "disc_start": 0, "disc_ndf": 0 }""", "gan.json: 'discriminator.disc_ndf' must be at least 1 (got 0)")]
    [InlineData("""{ "disc_start": 0, "disc_ndf": 24, "norm": "group_norm" }""", "gan.json: 'discriminator.disc_ndf' 24 gives a layer of 48 channels")]
    [InlineData("""{ "disc_start": 0, "disc_loss": "wasserstein" }""", "gan.json: field 'discriminator.disc_loss'")]
    [InlineData("""{ "disc_start": 0, "norm": "instance_norm" }""", "gan.json: field 'discriminator.norm'")]
    [InlineData("""{ "disc_start": 0, "adaptive_weight": "yes" }""", "gan.json: field 'discriminator.adaptive_weight'")]
    [InlineData("""{ "disc_start": 0, "learning_rate": 0 }""", "gan.json: 'discriminator.learning_rate' must be a positive number, or null for training.learning_rate (got 0)")]
    [InlineData("""{ "disc_start": 0, "adam_beta1": 1 }""", "gan.json: 'discriminator.adam_beta1' must be in [0, 1) (got 1)")]
    [InlineData("""{ "disc_start": 0, "adam_beta2": -0.1 }""", "gan.json: 'discriminator.adam_beta2' must be in [0, 1) (got -0.1)")]
    [InlineData("""{ "disc_start": 0, "adam_epsilon": -1 }""", "gan.json: 'discriminator.adam_epsilon' must not be negative (got -1)")]
    [InlineData("""{ "disc_start": 0, "weight_decay": -1 }""", "gan.json: 'discriminator.weight_decay' must not be negative (got -1)")]
    public void DiscriminatorErrorsAreOneLineNamingTheField(string section, string expected)
    {
        var message = ErrorOf(section);
        Assert.StartsWith(expected, message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void TheSectionIsOptionalAndItsDefaultsAreTamings()
    {
        Assert.Null(VaeRecipe.Parse("{}").Discriminator);
        using (var plain = VaeTraining.CreateTask(VaeTrainingTests.Tiny(1))) Assert.Null(plain.Adversary);

        var options = VaeRecipe.Parse("""{ "discriminator": { "disc_start": 50001 } }""").Discriminator!;
        Assert.Equal(new VaeDiscriminatorOptions { DiscStart = 50001 }, options);
        Assert.Equal((1.0, 1.0, 3, 64, DiscriminatorLossKind.Hinge, DiscriminatorNorm.BatchNorm, true, null),
            (options.DiscWeight, options.DiscFactor, options.DiscNumLayers, options.DiscNdf, options.DiscLoss, options.Norm, options.AdaptiveWeight, options.LearningRate));
        Assert.Equal((0.5, 0.9, 0.0), (options.AdamBeta1, options.AdamBeta2, options.WeightDecay));

        // learning_rate null takes training's.
        var tiny = VaeTrainingTests.Tiny(1) with { Discriminator = options with { DiscNdf = 8, DiscNumLayers = 1 } };
        using var task = VaeTraining.CreateTask(tiny);
        Assert.Equal(tiny.Training.LearningRate, task.Adversary!.LearningRate);
        Assert.Equal(50001, task.Adversary.StartStep);
        Assert.Equal((0.5, 0.9), (task.Adversary.Beta1, task.Adversary.Beta2));
    }

    [Fact]
    public void TheShippedGanRecipeIsTheColoursRecipePlusADiscriminator()
    {
        var gan = JsonNode.Parse(File.ReadAllText(Recipe("vae-fashion-colours-gan.json")))!.AsObject();
        var plain = JsonNode.Parse(File.ReadAllText(Recipe("vae-fashion-colours.json")))!.AsObject();
        Assert.True(gan.Remove("discriminator"));
        Assert.True(JsonNode.DeepEquals(plain, gan), "vae-fashion-colours-gan.json differs from vae-fashion-colours.json beyond its discriminator");

        var recipe = VaeRecipe.Load(Recipe("vae-fashion-colours-gan.json")).Validate();
        Assert.Equal(1000, recipe.Discriminator!.DiscStart);
        Assert.Equal(0.5, recipe.Discriminator.DiscWeight);
        // The serialised copy (recipe.json of a run) reads back the same.
        Assert.Equal(recipe.Discriminator, VaeRecipe.Parse(RecipeJson.Serialize(recipe)).Discriminator);
    }
}
