using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Toy;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

public class ToyTests(ITestOutputHelper output)
{
    [Fact]
    public void SCurveFollowsScikitLearnsFormula()
    {
        using var clean = SCurve.Sample(1000, noise: 0, scale: 1, seed: 3);
        var p = clean.ToArray<float>();
        for (int i = 0; i < 1000; i++)
        {
            double x = p[2 * i], z = p[2 * i + 1];
            // x = sin t, z = sign(t)(cos t − 1) ⇒ (|z| − 1)² + x² = cos² t + sin² t = 1, with z ∈ [−2, 2] and sign(z) = −sign(x) near 0.
            Assert.Equal(1.0, (Math.Abs(z) - 1) * (Math.Abs(z) - 1) + x * x, 4);
            Assert.InRange(z, -2.0001, 2.0001);
        }
        using var scaled = SCurve.Sample(1000, noise: 0.1, scale: 0.1, seed: 3);
        using var max = scaled.Abs().Max();
        Assert.InRange(max.Item(), 0.1, 0.3);
    }

    [Fact]
    public void ScheduleHasTheWriteUpsSigmoidBetas()
    {
        using var schedule = new ToySchedule();
        Assert.Equal(100, schedule.Betas.Length);
        // sigmoid(−6)·(5e-3 − 1e-5) + 1e-5 and sigmoid(6)·(…) + 1e-5
        Assert.Equal(1e-5 + (5e-3 - 1e-5) / (1 + Math.Exp(6)), schedule.Betas[0], 8);
        Assert.Equal(1e-5 + (5e-3 - 1e-5) / (1 + Math.Exp(-6)), schedule.Betas[^1], 8);
        Assert.True(schedule.Betas.Zip(schedule.Betas.Skip(1)).All(p => p.First < p.Second));
    }

    [Fact]
    public void TrainedSamplesLieOnTheCurveAndNoiseDoesNot()
    {
        var dir = TestDirectory.Create();
        try
        {
            var recipe = new ToyRecipe { SamplePoints = 2000, Training = ToyRecipe.DefaultTraining with { MaxSteps = 2000, CheckpointEvery = 0, SampleEvery = 1000 } };
            var watch = Stopwatch.StartNew();
            var outcome = ToyTraining.Run(recipe, dir);
            output.WriteLine($"2000 steps + sampling in {watch.Elapsed.TotalSeconds:F1} s ({outcome.Training.StepsPerSecond:F0} it/s); " +
                $"mean nearest distance: samples {outcome.MeanNearestDistance:F4}, noise {outcome.NoiseMeanNearestDistance:F4}");
            Assert.Equal(100, outcome.ForwardFrames.Count);
            Assert.True(File.Exists(Path.Combine(dir, "samples", "step-001000.png")));
            Assert.Equal(101, outcome.ReverseFrames.Count);
            Assert.Equal(0, outcome.ReverseFrames[^1].Step);
            // forward.png and reverse.png are animated (an acTL chunk before the image data), samples.png a still.
            Assert.Equal(["forward.png", "reverse.png", "samples.png"], outcome.Images.Select(Path.GetFileName));
            foreach (var image in outcome.Images)
            {
                var bytes = File.ReadAllBytes(image);
                Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
                Assert.Equal(!image.EndsWith("samples.png"), System.Text.Encoding.ASCII.GetString(bytes).Contains("acTL"));
            }
            // Thresholds from the write-up's own PyTorch code run for the same 2000 steps (batch 512, Adam
            // 1e-3, clip 1.0): its samples lie 0.025 (mean) / 0.014 (median) from the nearest data point,
            // against ≈ 1.06 for N(0, I) noise; the data's own noise is 0.01 per coordinate. The bounds
            // leave 40 % for seed-to-seed variation and stay 15× below the noise (≈ 0.006 after 20,000 steps).
            using var data = SCurve.Sample(recipe.Points, recipe.Noise, recipe.Scale, recipe.DataSeed);
            using var samples = Tensor.From(outcome.ReverseFrames[^1].Coordinates, outcome.ReverseFrames[^1].Count, 2);
            var median = SCurve.NearestDistances(samples, data).Order().ElementAt(recipe.SamplePoints / 2);
            output.WriteLine($"median nearest distance {median:F4}");
            Assert.True(outcome.NoiseMeanNearestDistance > 0.5, $"noise lies {outcome.NoiseMeanNearestDistance} from the data");
            Assert.True(outcome.MeanNearestDistance < 0.035, $"samples lie {outcome.MeanNearestDistance} from the data on average");
            Assert.True(median < 0.02, $"half the samples lie farther than {median} from the data");
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }
}
