using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// AUTOMATIC1111's Interrupt (diffusers' pipe.interrupt): the run ends after the running step with the images decoded from
/// that step's prediction of the clean latents; the chunks done stay, the ones not started are left out. Cancellation still
/// throws and returns nothing.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class InterruptTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    private static GenerationRequest Request => new()
    {
        Prompt = "a horse", Steps = 6, Seed = 7, NumImages = 3, BatchSize = 1, Sampler = "euler", PreviewEvery = 1, Width = 64, Height = 64,
    };

    [Fact]
    public void AnInterruptedRunReturnsTheDoneChunksAndTheRunningOneDecodedFromItsCleanPrediction()
    {
        using var pipe = tiny.Load();
        using var whole = pipe.TextToImage(Request);
        Assert.False(whole.Interrupted);

        // interrupt at step 3 of 6 of the second chunk (image 1): overall step 6 + 3
        using var interrupt = new CancellationTokenSource();
        RgbImage? shown = null;
        var steps = new List<int>();
        using var partial = pipe.TextToImage(Request, new Recorder<GenerationProgress>(p =>
        {
            steps.Add(p.Step);
            if (p.Step != 9) return;
            shown = p.Preview; // the preview decodes the step's pred_original_sample with the pipeline's own VAE
            interrupt.Cancel();
        }), interrupt: interrupt.Token);

        Assert.True(partial.Interrupted);
        Assert.Equal(Enumerable.Range(1, 9), steps); // the step that was running is the last one
        Assert.Equal(2, partial.Images.Count);
        Assert.Equal([2L, 4, 8, 8], partial.Latents.Shape);
        Assert.Equal([7L, 8], partial.Parameters.Select(p => p.Seed));
        Assert.Equal(whole.Images[0].Pixels, partial.Images[0].Pixels);   // the finished chunk is the uninterrupted image
        Assert.Equal(shown!.Pixels, partial.Images[1].Pixels);            // the interrupted one is what the preview showed
        using (var cut = partial.Latents.Narrow(0, 1, 1))
        using (var finished = whole.Latents.Narrow(0, 1, 1))
            Assert.True(TensorAssert.MaxAbsDifference(cut, finished) > 1e-3, "three steps short of the end, the image differs from the finished one");

        // an interrupt that fires before the run: the first step runs, the images come from its prediction
        using var early = new CancellationTokenSource();
        early.Cancel();
        using var first = pipe.TextToImage(Request with { NumImages = 1 }, interrupt: early.Token);
        Assert.True(first.Interrupted);
        Assert.Single(first.Images);
    }

    [Fact]
    public void CancellationStillThrows()
    {
        using var pipe = tiny.Load();
        using var cancel = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => pipe.TextToImage(Request, new Recorder<GenerationProgress>(p =>
        {
            if (p.Step == 2) cancel.Cancel();
        }), cancel.Token));
    }
}
