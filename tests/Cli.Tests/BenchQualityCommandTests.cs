using System.Text.Json;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm bench quality</c> (issue 19's bf16 study) and its pixel metrics.</summary>
public sealed class BenchQualityCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-quality-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    [Fact]
    public void MetricsAgreeWithAHandComputation()
    {
        // Two 2×1 RGB images: differences 0, 1, 3 | 0, 0, 4.
        var a = new RgbImage(2, 1, [0, 0, 0, 10, 10, 10]);
        var b = new RgbImage(2, 1, [0, 1, 3, 10, 10, 14]);

        var d = ImageDifference.Of(a, b);

        Assert.Equal(4, d.MaxLevels);
        Assert.Equal(8.0 / 6, d.MeanAbsLevels, 12);
        Assert.Equal(10 * Math.Log10(255.0 * 255 / (26.0 / 6)), d.PsnrDb!.Value, 12); // MSE (1 + 9 + 16) / 6
        Assert.Equal(2.0 / 6, d.FractionOver2Levels, 12); // 3 and 4
        Assert.Equal(6, d.Values);
        Assert.Equal(d, ImageDifference.Of(b, a));

        var same = ImageDifference.Of(a, a);
        Assert.Equal((0, 0.0, (double?)null, 0.0), (same.MaxLevels, same.MeanAbsLevels, same.PsnrDb, same.FractionOver2Levels));

        // Combined: over all 12 values, not the mean of the two PSNRs (one is infinite).
        var both = ImageDifference.Combine([d, same]);
        Assert.Equal(4, both.MaxLevels);
        Assert.Equal(8.0 / 12, both.MeanAbsLevels, 12);
        Assert.Equal(10 * Math.Log10(255.0 * 255 / (26.0 / 12)), both.PsnrDb!.Value, 12);
        Assert.Equal(2.0 / 12, both.FractionOver2Levels, 12);

        var e = Assert.Throws<ArgumentException>(() => ImageDifference.Of(a, new RgbImage(1, 2, new byte[6])));
        Assert.Contains("2×1×3", e.Message);
        Assert.Equal((4.0, 7.0), QualityBenchmark.LatentsDifference([1, -7, 2], [1, -3, 2.5f]));
    }

    [Fact]
    public void F32AgainstItselfIsIdenticalAndBf16MatchesWhatGenerateWrites()
    {
        var model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));
        string[] request = ["--model", model, "--steps", "3", "--seeds", "1", "--sampler", "euler", "--prompt", "an astronaut"];

        using var same = Run([.. request, "--dtype", "f32"]);
        var images = same.RootElement.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(["txt2img", "img2img"], images.Select(i => i.GetProperty("mode").GetString()));
        foreach (var image in images.Append(same.RootElement))
        {
            var pixels = image.GetProperty(image.TryGetProperty("pixels", out _) ? "pixels" : "overall");
            Assert.Equal(0, pixels.GetProperty("max_levels").GetInt32());
            Assert.Equal(0, pixels.GetProperty("mean_abs_levels").GetDouble());
            Assert.False(pixels.TryGetProperty("psnr_db", out _)); // identical: infinite, left out
        }
        Assert.Equal(0, same.RootElement.GetProperty("latents_max_abs_diff").GetDouble());

        using var bf16 = Run([.. request, "--dtype", "bf16", "--mode", "txt2img"]);
        var text = Assert.Single(bf16.RootElement.GetProperty("images").EnumerateArray());
        Assert.True(text.GetProperty("latents_max_abs_diff").GetDouble() > 0);
        // The same requests as `ldm generate` in either dtype: its two PNGs differ exactly as the study reports.
        var png = new Dictionary<string, RgbImage>();
        foreach (var dtype in new[] { "f32", "bf16" })
        {
            var path = Path.Combine(work, dtype + ".png");
            var g = CliRunner.Run("generate", "an astronaut", "--model", model, "--steps", "3", "--seed", "1", "--sampler", "euler", "--dtype", dtype, "--out", path);
            Assert.True(g.ExitCode == 0, g.Err);
            png[dtype] = RgbImage.Load(path);
        }
        var expected = ImageDifference.Of(png["f32"], png["bf16"]);
        Assert.True(expected.MaxLevels > 0, "bf16 should change at least one 8-bit value of the tiny model's image");
        var reported = text.GetProperty("pixels");
        Assert.Equal(expected.MaxLevels, reported.GetProperty("max_levels").GetInt32());
        Assert.Equal(expected.MeanAbsLevels, reported.GetProperty("mean_abs_levels").GetDouble(), 12);
        Assert.Equal(expected.FractionOver2Levels, reported.GetProperty("fraction_over2_levels").GetDouble(), 12);
        Assert.Equal(expected.PsnrDb!.Value, reported.GetProperty("psnr_db").GetDouble(), 9);
    }

    [Fact]
    public void AnUnknownSamplerIsOneLineBeforeLoading()
    {
        var r = CliRunner.Run("bench", "quality", "--model", Path.Combine(work, "none"), "--sampler", "nope");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("nope", Assert.Single(r.ErrLines));
    }

    private static JsonDocument Run(string[] args)
    {
        var r = CliRunner.Run(["bench", "quality", "--json", .. args]);
        Assert.True(r.ExitCode == 0, r.Err);
        return JsonDocument.Parse(r.Out);
    }
}
