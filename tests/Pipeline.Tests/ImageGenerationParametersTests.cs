using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class ImageGenerationParametersTests
{
    private static readonly GenerationParameters Cat = new()
    {
        Prompt = "a photo of a cat",
        NegativePrompt = "blurry, lowres",
        Steps = 20,
        Sampler = "Euler a",
        CfgScale = 7,
        Seed = 42,
        Width = 512,
        Height = 512,
        Model = "sd-v1-5",
    };

    [Fact]
    public void FormatsExactlyLikeAutomatic1111()
    {
        Assert.Equal(
            "a photo of a cat\nNegative prompt: blurry, lowres\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd-v1-5",
            Cat.Format());
        Assert.Equal(Cat.Format(), Cat.ToString());
    }

    [Fact]
    public void WritesTheScheduleTypeAfterTheSamplerAsAutomatic1111From19Does()
    {
        var p = Cat with { Sampler = "DPM++ 2M", ScheduleType = "Karras" };
        Assert.Equal(
            "a photo of a cat\nNegative prompt: blurry, lowres\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd-v1-5",
            p.Format());
        var back = GenerationParameters.Parse(p.Format());
        Assert.Equal(p, back);
        Assert.Empty(back.Extra);
        Assert.Null(GenerationParameters.Parse(Cat.Format()).ScheduleType);
    }

    [Fact]
    public void OmitsEmptyNegativePromptAndWritesOptionalFieldsInOrder()
    {
        var p = Cat with
        {
            Prompt = "cat",
            NegativePrompt = "",
            Steps = 30,
            Sampler = "DDIM",
            CfgScale = 7.5,
            Seed = 4294967295,
            Width = 768,
            Model = null,
            Strength = 0.75,
            ClipSkip = 2,
            Eta = 0.5,
            Extra = [new("Version", "ldm 0.1.0")],
        };
        Assert.Equal(
            "cat\nSteps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 4294967295, Size: 768x512, Denoising strength: 0.75, Clip skip: 2, Eta: 0.5, Version: ldm 0.1.0",
            p.Format());
    }

    [Fact]
    public void QuotesValuesWithCommasColonsOrNewlinesAsJson()
    {
        var p = Cat with
        {
            NegativePrompt = "",
            Model = "my, model: v2",
            Extra = [new("Lora hashes", "a: 1, b: 2"), new("Note", "he said \"hi\"\nbye"), new("Plain", "x\"y")],
        };
        Assert.Equal(
            "a photo of a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: \"my, model: v2\", " +
            "Lora hashes: \"a: 1, b: 2\", Note: \"he said \\\"hi\\\"\\nbye\", Plain: x\"y",
            p.Format());
        Assert.Equal(p, GenerationParameters.Parse(p.Format()));
    }

    [Fact]
    public void ParsesAutomatic1111TextKeepingUnknownFields()
    {
        var text = "masterpiece, 1girl, (red hair:1.2)\nsecond line\nNegative prompt: lowres, bad anatomy\nmore negative\n" +
                   "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x768, Model hash: 6ce0161689, " +
                   "Model: v1-5-pruned-emaonly, Denoising strength: 0.55, Clip skip: 2, Hires upscale: 2, Version: v1.6.0";
        var p = GenerationParameters.Parse(text);
        Assert.Equal("masterpiece, 1girl, (red hair:1.2)\nsecond line", p.Prompt);
        Assert.Equal("lowres, bad anatomy\nmore negative", p.NegativePrompt);
        Assert.Equal((28, "DPM++ 2M Karras", 6.5, 3141592653L, 512, 768), (p.Steps, p.Sampler, p.CfgScale, p.Seed, p.Width, p.Height));
        Assert.Equal("v1-5-pruned-emaonly", p.Model);
        Assert.Equal(0.55, p.Strength);
        Assert.Equal(2, p.ClipSkip);
        Assert.Null(p.Eta);
        Assert.Equal([new("Model hash", "6ce0161689"), new("Hires upscale", "2"), new("Version", "v1.6.0")], p.Extra);
    }

    [Fact]
    public void ReadsTheParametersPillowWrote()
    {
        var p = GenerationParameters.FromPng(PngTestFiles.Fixture("a1111_text.png"));
        Assert.NotNull(p);
        Assert.Equal("a cat, highly detailed", p.Prompt);
        Assert.Equal("blurry", p.NegativePrompt);
        Assert.Equal("v1-5-pruned-emaonly", p.Model);
        Assert.Equal(
            "a cat, highly detailed\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, " +
            "Model: v1-5-pruned-emaonly, Model hash: 6ce0161689, Version: v1.6.0",
            p.Format());
    }

    [Theory]
    [InlineData("a photo of a cat", "blurry, lowres")]
    [InlineData("line one\nline two", "neg one\nneg two")]
    [InlineData("", "")]
    [InlineData("", "only negative")]
    [InlineData("猫の写真, ünïcödé", "")]
    [InlineData("Steps: 1, Sampler: x, CFG scale: 2 inside the prompt", "")]
    public void RoundTrips(string prompt, string negative)
    {
        var p = Cat with { Prompt = prompt, NegativePrompt = negative, Strength = 0.3, Eta = 1, ClipSkip = 1 };
        Assert.Equal(p, GenerationParameters.Parse(p.Format()));
    }

    [Fact]
    public void FloatValuesPrintInTheirShortForm()
    {
        var p = Cat with { NegativePrompt = "", Model = null, CfgScale = 0.7f, Strength = 0.35f, Eta = 0.1 };
        Assert.Equal("a photo of a cat\nSteps: 20, Sampler: Euler a, CFG scale: 0.7, Seed: 42, Size: 512x512, Denoising strength: 0.35, Eta: 0.1", p.Format());
    }

    [Fact]
    public void EmptyPromptLeavesOnlyTheParameterLine()
    {
        Assert.Equal("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd-v1-5",
            (Cat with { Prompt = "", NegativePrompt = "" }).Format());
    }

    [Fact]
    public void MissingOrMalformedFieldsAreFormatErrors()
    {
        Assert.Throws<FormatException>(() => GenerationParameters.Parse("just a prompt"));
        var e = Assert.Throws<FormatException>(() => GenerationParameters.Parse("cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Size: 512x512"));
        Assert.Contains("'Seed'", e.Message);
        Assert.Throws<FormatException>(() => GenerationParameters.Parse("cat\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"));
        Assert.Throws<FormatException>(() => GenerationParameters.Parse("cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: big"));
        Assert.False(GenerationParameters.TryParse("just a prompt", out var none));
        Assert.Null(none);
        Assert.True(GenerationParameters.TryParse(Cat.Format(), out var cat));
        Assert.Equal(Cat, cat);
    }

    [Fact]
    public void EqualityComparesExtraFieldsByValue()
    {
        var a = Cat with { Extra = [new("Version", "1")] };
        var b = Cat with { Extra = [new("Version", "1")] };
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, Cat with { Extra = [new("Version", "2")] });
    }
}
