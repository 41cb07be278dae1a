using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>The shipped judges (models/judges), verified cheaply on a fixed slice of the real test split.</summary>
[Collection(LiveTensorCount.Name)]
public class JudgeTests(FashionMnistSplits splits) : IClassFixture<FashionMnistSplits>
{
    private const int Slice = 1000;

    private static string Folder(string name) => Path.Combine(SharedData.RepositoryRoot, "models", "judges", name);

    [Fact]
    public void ShippedClassifierReachesItsAccuracyOnTheFirstThousandTestImages()
    {
        using var judge = Judge.LoadFashionClassifier(Folder(Judge.FashionClassifierName));
        var test = LabelledImages.FromFashionMnist(splits.Test).Take(Slice);
        var accuracy = ClassifierTraining.Evaluate(judge.Model, test);
        Assert.True(accuracy.ClassAccuracy >= 0.89, $"class accuracy {accuracy.ClassAccuracy:P1} on {Slice} test images");

        var report = judge.ReadReport()!;
        Assert.True(report.ClassAccuracy >= 0.90, $"reported test accuracy {report.ClassAccuracy:P2}");
        Assert.Equal(10000, report.TestImages);
        Assert.Equal(10000, judge.Reference.Count);
        Assert.Equal(judge.Model.Config.FeatureDim, judge.Reference.Dimension);
        Assert.True(new FileInfo(Path.Combine(judge.Directory, "model.safetensors")).Length < 2_000_000);
    }

    [Fact]
    public void ShippedColoursJudgeReachesItsAccuracyOnTheFirstThousandTestImages()
    {
        using var judge = Judge.LoadFashionColoursJudge(Folder(Judge.FashionColoursJudgeName));
        var test = LabelledImages.FromFashionColours(new FashionColours(splits.Test, train: false)).Take(Slice);
        var accuracy = ClassifierTraining.Evaluate(judge.Model, test);
        Assert.True(accuracy.ClassAccuracy >= 0.88, $"class accuracy {accuracy.ClassAccuracy:P1} on {Slice} test images");
        Assert.True(accuracy.ColourAccuracy >= 0.97, $"colour accuracy {accuracy.ColourAccuracy:P1} on {Slice} test images");

        var report = judge.ReadReport()!;
        Assert.True(report.ClassAccuracy >= 0.90, $"reported class accuracy {report.ClassAccuracy:P2}");
        Assert.True(report.ColourAccuracy >= 0.98, $"reported colour accuracy {report.ColourAccuracy:P2}");
        Assert.Equal(10000, judge.Reference.Count);
        Assert.True(new FileInfo(Path.Combine(judge.Directory, "model.safetensors")).Length < 2_000_000);
    }

    [Fact]
    public void JudgesAreFoundAboveTheApplicationFolder()
    {
        Assert.Equal(Path.GetFullPath(Folder(Judge.FashionClassifierName)), Path.GetFullPath(Judge.Locate(Judge.FashionClassifierName)));
        var e = Assert.Throws<FileNotFoundException>(() => Judge.Locate("no-such-judge"));
        Assert.Contains(Judge.DirectoryVariable, e.Message);
    }

    [Fact]
    public void DdpmEvaluationTellsRealImagesFromNoise()
    {
        using var judge = Judge.LoadFashionClassifier(Folder(Judge.FashionClassifierName));
        var test = LabelledImages.FromFashionMnist(splits.Test);
        var next = 5000; // real images the reference statistics include, from the second half of the split
        var calls = new List<int>();
        Tensor Real(int n)
        {
            calls.Add(n);
            var (images, classes, _) = test.Batch(Enumerable.Range(next, n).ToArray());
            classes.Dispose();
            next += n;
            return images;
        }
        // The first inference pass gives each Conv2d its prepacked weight, which the model keeps, and each Linear the weight
        // its row count runs fastest on (packed for few rows, plain for many: Linear.PackedIsFaster), so warm up with the
        // evaluation's smallest batch.
        WarmUp(judge, channels: 1, batch: 100);
        var live = LiveTensorCount.Settled();
        var real = DdpmEvaluation.Evaluate(Real, 600, judge, batchSize: 250);
        Assert.Equal(live, Tensor.LiveCount);
        Assert.Equal([250, 250, 100], calls);
        Assert.Equal(600, real.Samples);
        Assert.Equal(600, real.ClassHistogram.Values.Sum());
        Assert.Equal(FashionMnist.ClassNames, real.ClassHistogram.Keys);
        Assert.All(real.ClassHistogram.Values, n => Assert.InRange(n, 30, 95)); // about 60 of each class

        using var generator = new Generator(11);
        var noise = DdpmEvaluation.Evaluate(n => Tensors.Rand([n, 1, 32, 32], generator) * 2 - 1, 600, judge, batchSize: 300);
        // Only bags: right-looking images, wrong distribution.
        var bags = Enumerable.Range(0, test.Count).Where(i => test.Class(i) == 8).ToArray();
        var taken = 0;
        var onlyBags = DdpmEvaluation.Evaluate(n =>
        {
            var (images, classes, _) = test.Batch(bags.AsSpan(taken, n));
            classes.Dispose();
            taken += n;
            return images;
        }, 600, judge, batchSize: 200);
        Assert.True(real.Fid * 5 < onlyBags.Fid, $"FID real {real.Fid:F2}, only bags {onlyBags.Fid:F2}");
        Assert.True(onlyBags.Fid < noise.Fid, $"FID only bags {onlyBags.Fid:F2}, noise {noise.Fid:F2}");
        Assert.True(onlyBags.ClassHistogram["bag"] > 550);

        // The JSON that `ldm eval ddpm --json` prints.
        using var json = System.Text.Json.JsonDocument.Parse(System.Text.Json.JsonSerializer.Serialize(real));
        Assert.Equal(["fid", "class_histogram", "samples"], json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(600, json.RootElement.GetProperty("samples").GetInt32());
        Assert.Equal(real.ClassHistogram["t-shirt"], json.RootElement.GetProperty("class_histogram").GetProperty("t-shirt").GetInt32());
    }

    [Fact]
    public void PipelineImagesConvertToTheJudgeFormat()
    {
        using var scope = DisposeScope.Enter();
        // [1, 2, 2, 3] in [0, 1]: pixel (y, x) has channels (r, g, b).
        var nhwc = Tensor.From(new float[] { 0, 0.5f, 1, 0.25f, 0.5f, 0.75f, 1, 1, 1, 0, 0, 0 }, 1, 2, 2, 3);
        var nchw = Judge.FromPipelineImages(nhwc);
        Assert.Equal([1L, 3, 2, 2], nchw.Shape);
        Assert.Equal(new float[] { -1, -0.5f, 1, -1, 0, 0, 1, -1, 1, 0.5f, 1, -1 }, nchw.ToArray<float>());
        Assert.Throws<ArgumentException>(() => Judge.FromPipelineImages(Tensors.Zeros([3, 32, 32])));
    }

    [Fact]
    public void StandardPromptsCoverEveryCombinationAndMarkTheHeldOutOnes()
    {
        var prompts = PromptEvaluation.StandardPrompts();
        Assert.Equal(80, prompts.Count);
        Assert.Equal(80, prompts.Select(p => p.Prompt).Distinct().Count());
        Assert.Equal(80, prompts.Select(p => (p.Class, p.Colour)).Distinct().Count());
        Assert.Equal(6, prompts.Count(p => p.HeldOut));
        Assert.Contains(new EvaluationPrompt("a red sneaker", 7, 0, false), prompts);
        Assert.Contains(new EvaluationPrompt("a pair of red trousers", 1, 0, true), prompts);
        Assert.Contains(new EvaluationPrompt("an orange ankle boot", 9, 1, false), prompts);
        Assert.Contains(new EvaluationPrompt("a blue dress", 3, 5, true), prompts);
        var custom = PromptEvaluation.StandardPrompts(FashionColoursOptions.Default with { HeldOut = [new("sandal", "white")] });
        Assert.Equal([new EvaluationPrompt("a white sandal", 5, 7, true)], custom.Where(p => p.HeldOut));
    }

    [Fact]
    public void PromptEvaluationScoresAGeneratorThatDrawsWhatIsAsked()
    {
        using var judge = Judge.LoadFashionColoursJudge(Folder(Judge.FashionColoursJudgeName));
        var test = splits.Test;
        var byClass = Enumerable.Range(0, 10).Select(c => Enumerable.Range(0, test.Count).Where(i => test.Labels[i] == c).ToArray()).ToArray();
        var prompts = PromptEvaluation.StandardPrompts();
        const int perPrompt = 6;
        // A perfect "generator": real test items of the asked class, tinted with the asked colour.
        Tensor Faithful(string prompt, int n)
        {
            var p = prompts.Single(x => x.Prompt == prompt);
            var pixels = new float[n * 3 * 32 * 32];
            for (int i = 0; i < n; i++)
                FashionColours.Render(test.Image(byClass[p.Class!.Value][p.Colour!.Value * perPrompt + i]), FashionColours.Colours[p.Colour.Value], pixels.AsSpan(i * 3072, 3072));
            return Tensor.From(pixels, n, 3, 32, 32);
        }
        WarmUp(judge, channels: 3, batch: perPrompt);
        var live = LiveTensorCount.Settled();
        var good = PromptEvaluation.Evaluate(Faithful, prompts, perPrompt, judge);
        Assert.Equal(live, Tensor.LiveCount);
        Assert.Equal(80 * perPrompt, good.Samples);
        Assert.Equal(80, good.Prompts.Count);
        Assert.True(good.ClassAdherence >= 0.85, $"class adherence {good.ClassAdherence:P1}");
        Assert.True(good.ColourAdherence >= 0.97, $"colour adherence {good.ColourAdherence:P1}");
        Assert.True(good.HeldOutAdherence >= 0.75, $"held-out adherence {good.HeldOutAdherence:P1}");
        Assert.NotNull(good.SeenAdherence);
        var redSneaker = good.Prompts.Single(p => p.Prompt == "a red sneaker");
        Assert.Equal(("sneaker", "red", false, perPrompt), (redSneaker.Class, redSneaker.Colour, redSneaker.HeldOut, redSneaker.Samples));
        Assert.Equal(perPrompt, redSneaker.PredictedColours["red"]);

        // A generator that ignores the prompt: always the same red t-shirts.
        Tensor Stubborn(string prompt, int n) => Faithful("a red t-shirt", n);
        var bad = PromptEvaluation.Evaluate(Stubborn, [("a red t-shirt", 0, 0), ("a blue dress", 3, 5), ("a green bag", 8, 3), ("something green", null, 3)], perPrompt, judge);
        Assert.True(bad.ClassAdherence <= 0.4, $"class adherence {bad.ClassAdherence:P1}");
        Assert.True(bad.ColourAdherence <= 0.3, $"colour adherence {bad.ColourAdherence:P1}");
        Assert.Equal(0, bad.HeldOutAdherence); // "a blue dress" is held out and never drawn
        Assert.Null(bad.Prompts[3].ClassAdherence);
        Assert.True(bad.Fid > good.Fid, $"FID ignoring prompts {bad.Fid:F2}, faithful {good.Fid:F2}");

        using var json = System.Text.Json.JsonDocument.Parse(System.Text.Json.JsonSerializer.Serialize(bad));
        Assert.Equal(["class_adherence", "colour_adherence", "held_out_adherence", "seen_adherence", "fid", "samples", "prompts"],
            json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("a blue dress", json.RootElement.GetProperty("prompts")[1].GetProperty("prompt").GetString());
        Assert.True(json.RootElement.GetProperty("prompts")[1].GetProperty("held_out").GetBoolean());
    }

    private static void WarmUp(Judge judge, int channels, int batch)
    {
        using var images = Tensors.Zeros([batch, channels, 32, 32]);
        judge.Classify(images);
    }
}
