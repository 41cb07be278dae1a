using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>Reports on the caller's thread, so a test sees every step in order.</summary>
internal sealed class Recorder<T>(Action<T> record) : IProgress<T>
{
    public void Report(T value) => record(value);
}

/// <summary>Training and testing the classifier and judge code on tiny subsets (the shipped weights are trained by configs/eval/train-judges.cs).</summary>
[Collection(LiveTensorCount.Name)]
public class EvalTrainingTests(FashionMnistSplits splits) : IClassFixture<FashionMnistSplits>
{
    private static readonly FashionClassifierConfig Small = new() { BlockOutChannels = [8, 16, 16], FeatureDim = 32 };

    [Fact]
    public void ClassifierLearnsFromATinySubsetWithAFlatTensorCount()
    {
        var data = LabelledImages.FromFashionMnist(splits.Train).Take(1024);
        var live = new List<long>();
        var options = new ClassifierTrainingOptions { Model = Small, MaxSteps = 48, BatchSize = 32, LearningRate = 5e-3, Seed = 3 };
        var before = LiveTensorCount.Settled();
        var trained = ClassifierTraining.Train(data, options, new Recorder<ClassifierTrainingProgress>(p => live.Add(Tensor.LiveCount)));
        using var model = trained.Model;
        Assert.Equal(48, trained.Losses.Count);
        Assert.Equal(48, live.Count);
        // After the first step (which creates AdamW's state) nothing accumulates.
        Assert.All(live.Skip(1), n => Assert.Equal(live[1], n));
        Assert.True(trained.Losses.TakeLast(8).Average() < 0.7 * trained.Losses.Take(8).Average(),
            $"loss {trained.Losses.Take(8).Average():F3} → {trained.Losses.TakeLast(8).Average():F3}");

        var test = LabelledImages.FromFashionMnist(splits.Test).Take(500);
        var accuracy = ClassifierTraining.Evaluate(model, test);
        Assert.Equal(500, accuracy.Count);
        Assert.True(accuracy.ClassAccuracy > 0.4, $"accuracy {accuracy.ClassAccuracy} (chance is 0.1)");
        Assert.Null(accuracy.ColourAccuracy);
        var statistics = ClassifierTraining.FeatureStatisticsOf(model, test);
        Assert.Equal(32, statistics.Dimension);
        Assert.Equal(500, statistics.Count);
        Assert.False(model.IsTraining);
        // Evaluation left nothing behind but the model's own tensors: its state and, where oneDNN is there,
        // one prepacked weight per Conv2d and, where its matmul is called directly, per Linear (made by the first
        // inference pass, kept by the module).
        var convolutions = model.NamedModules().Count(m => m.Module is Conv2d);
        var linears = model.NamedModules().Count(m => m.Module is Linear);
        Assert.Contains(Tensor.LiveCount - before - model.StateDict().Count,
            new long[] { 0, convolutions + (TorchRuntime.DirectOneDnnActive ? linears : 0) });
        var afterFirst = Tensor.LiveCount;
        ClassifierTraining.Evaluate(model, test);
        Assert.Equal(afterFirst, Tensor.LiveCount);
    }

    [Fact]
    public void JudgeLearnsClassAndColourFromATinySubset()
    {
        var colours = new FashionColours(splits.Train, train: true, includeHeldOut: true);
        var data = LabelledImages.FromFashionColours(colours).Take(1024);
        Assert.True(data.HasColours);
        var options = new ClassifierTrainingOptions { Model = Small with { InChannels = 3, NumColours = 8 }, MaxSteps = 48, BatchSize = 32, LearningRate = 5e-3 };
        var trained = ClassifierTraining.Train(data, options);
        using var model = trained.Model;
        var test = LabelledImages.FromFashionColours(new FashionColours(splits.Test, train: false)).Take(500);
        var accuracy = ClassifierTraining.Evaluate(model, test);
        Assert.True(accuracy.ClassAccuracy > 0.25, $"class accuracy {accuracy.ClassAccuracy} (chance is 0.1)");
        Assert.True(accuracy.ColourAccuracy > 0.5, $"colour accuracy {accuracy.ColourAccuracy} (chance is 0.125)");
    }

    [Fact]
    public void SavedModelLoadsWithItsConfigAndGivesTheSameOutputs()
    {
        using var scope = DisposeScope.Enter();
        using var generator = new Generator(5);
        using var model = new FashionClassifier(Small with { InChannels = 3, NumColours = 8 }, generator);
        var directory = Path.Combine(Path.GetTempPath(), $"judge-{Guid.NewGuid():N}");
        try
        {
            // A few training-mode passes move the BatchNorm running statistics away from their initial values.
            var images = Tensors.Randn([16, 3, 32, 32], generator);
            for (int i = 0; i < 3; i++) model.Forward(images).Dispose();
            model.Eval();
            using var expected = model.Forward(images);
            model.Save(directory);
            var config = File.ReadAllText(Path.Combine(directory, "config.json"));
            Assert.Contains("\"block_out_channels\"", config);
            Assert.DoesNotContain("FinalSide", config);
            using var loaded = FashionClassifier.FromPretrained(directory);
            Assert.Equal(model.Config.BlockOutChannels, loaded.Config.BlockOutChannels);
            Assert.Equal(8, loaded.Config.NumColours);
            Assert.Equal(3, loaded.StateDict()["blocks.0.norm.num_batches_tracked"].ItemInt64());
            using var actual = loaded.Forward(images);
            Assert.True(expected.ClassLogits.Equal(actual.ClassLogits));
            Assert.True(expected.ColourLogits!.Equal(actual.ColourLogits!));
            Assert.True(expected.Features.Equal(actual.Features));
            Assert.Equal([16L, 32], actual.Features.Shape);
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void BatchesRenderTheDdpmFormatAndCanBeRetinted()
    {
        using var scope = DisposeScope.Enter();
        var grey = LabelledImages.FromFashionMnist(splits.Test);
        var (images, classes, colours) = grey.Batch([0, 1]);
        Assert.Equal([2L, 1, 32, 32], images.Shape);
        Assert.Null(colours);
        Assert.Equal([9L, 2], classes.ToArray<long>()); // the first test items: ankle boot, pullover
        var pixels = images.ToArray<float>();
        Assert.Equal(-1f, pixels[0]);                              // padding
        Assert.Equal(splits.Test.Image(0)[13 * 28 + 14] / 127.5f - 1f, pixels[15 * 32 + 16], 6);
        Assert.Equal(0, grey.RecolourCount);

        var tinted = LabelledImages.FromFashionColours(new FashionColours(splits.Test, train: false)).Slice(10, 4);
        Assert.Equal(8, tinted.RecolourCount);
        var (plain, _, own) = tinted.Batch([0, 1, 2, 3]);
        var (retinted, _, relabelled) = tinted.Batch([0, 1, 2, 3], recolours: [7, 7, 7, 7]);
        Assert.Equal([7L, 7, 7, 7], relabelled!.ToArray<long>());
        Assert.Equal(Enumerable.Range(10, 4).Select(i => (long)new FashionColours(splits.Test, train: false).Colour(i)), own!.ToArray<long>());
        // White over the (12, 12, 16) background: red and green planes are identical.
        var white = retinted.ToArray<float>();
        for (int p = 0; p < 4 * 3072; p += 3072) Assert.Equal(white.AsSpan(p, 1024).ToArray(), white.AsSpan(p + 1024, 1024).ToArray());
        Assert.False(plain.Equal(retinted));
    }

    [Fact]
    public void CancellationStopsTrainingAndFreesTheModel()
    {
        var data = LabelledImages.FromFashionMnist(splits.Train).Take(256);
        using var cancel = new CancellationTokenSource();
        var before = LiveTensorCount.Settled();
        var steps = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => ClassifierTraining.Train(data,
            new ClassifierTrainingOptions { Model = Small, BatchSize = 32, Epochs = 5 },
            new Recorder<ClassifierTrainingProgress>(p => { if (++steps == 3) cancel.Cancel(); }), cancel.Token));
        Assert.Equal(3, steps);
        Assert.Equal(before, LiveTensorCount.Settled());
    }

    [Fact]
    public void WrongInputsAreNamed()
    {
        using var model = new FashionClassifier(Small);
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<ArgumentException>(() => model.Forward(Tensors.Zeros([2, 1, 28, 28])));
        Assert.Contains("[N, 1, 32, 32]", e.Message);
        var colours = LabelledImages.FromFashionColours(new FashionColours(splits.Test, train: false));
        Assert.Throws<ArgumentException>(() => ClassifierTraining.Train(colours, new ClassifierTrainingOptions { Model = Small, MaxSteps = 1 }));
        Assert.Throws<LatentDiffusion.Torch.Config.ConfigException>(() => new FashionClassifier(Small with { SampleSize = 28 }));
    }
}
