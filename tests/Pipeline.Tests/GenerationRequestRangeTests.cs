using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// GenerationRequest.Validate refuses NaN and ±∞ (a NaN passes a check written as <c>x &lt; 0</c>) and values that
/// produce a black image; clip skip is checked against the loaded text encoder with one message.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class GenerationRequestRangeTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    private static readonly GenerationRequest Valid = new() { Prompt = "x" };

    public static TheoryData<string, double> OutOfRange() => new()
    {
        { "GuidanceScale", double.NaN }, { "GuidanceScale", double.PositiveInfinity }, { "GuidanceScale", 1e30 }, { "GuidanceScale", -1 },
        { "GuidanceRescale", double.NaN }, { "GuidanceRescale", double.NegativeInfinity }, { "GuidanceRescale", 1.5 },
        { "Eta", double.NaN }, { "Eta", double.PositiveInfinity }, { "Eta", 100 }, { "Eta", -0.1 },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void NonFiniteAndOutOfRangeValuesAreRefusedByName(string field, double value)
    {
        var request = field switch
        {
            "GuidanceScale" => Valid with { GuidanceScale = value },
            "GuidanceRescale" => Valid with { GuidanceRescale = value },
            _ => Valid with { Eta = value },
        };
        var e = Assert.Throws<ArgumentOutOfRangeException>(request.Validate);
        Assert.Equal(field, e.ParamName);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0)]
    [InlineData(1.0000001)]
    public void StrengthOutsideZeroToOneIsRefused(double strength)
    {
        var request = new ImageToImageRequest(Valid, RgbImage.Filled(8, 8, new Rgb(0, 0, 0))) { Strength = strength };
        Assert.Equal("Strength", Assert.Throws<ArgumentOutOfRangeException>(request.Validate).ParamName);
    }

    [Fact]
    public void TheEndsOfEachRangeAreAccepted()
    {
        (Valid with { GuidanceScale = 100, GuidanceRescale = 1, Eta = 1 }).Validate();
        (Valid with { GuidanceScale = 0, GuidanceRescale = 0, Eta = 0 }).Validate();
        new ImageToImageRequest(Valid, RgbImage.Filled(8, 8, new Rgb(0, 0, 0))) { Strength = 1 }.Validate();
    }

    [Fact]
    public void ClipSkipBeyondTheTextEncodersLayersIsRefusedWithItsLayerCount()
    {
        using var pipe = tiny.Load();
        var layers = pipe.TextEncoder.NumLayers;
        foreach (var clipSkip in new[] { layers + 1, layers + 2 })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(Valid with { Steps = 1, ClipSkip = clipSkip }));
            Assert.Equal("ClipSkip", e.ParamName);
            Assert.StartsWith($"clip skip must be between 1 and {layers} (the text encoder's layer count)", e.Message);
        }
        var zero = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(Valid with { Steps = 1, ClipSkip = 0 }));
        Assert.StartsWith("clip skip must be between 1 and ", zero.Message);
        pipe.TextToImage(Valid with { Steps = 1, ClipSkip = layers }).Dispose();
    }
}
