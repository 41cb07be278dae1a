using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// SDXL's base → refiner hand-off (denoising_end on the base, denoising_start on the refiner, latents undecoded), a
/// tiny refiner (requires_aesthetics_score: 5 time ids) and the SDXL folders that must be refused with one line.
/// </summary>
public sealed class SdxlRefinerTests
{
    /// <summary>The tiny SDXL pipeline with every U-Net call's timestep recorded.</summary>
    private static (StableDiffusionPipeline Pipe, List<double> Calls) Recording(string folder)
    {
        var (pipe, recorder) = Recorded(folder);
        return (pipe, recorder.Calls);
    }

    private static (StableDiffusionPipeline Pipe, RecordingDenoiser Recorder) Recorded(string folder)
    {
        var loaded = StableDiffusionPipeline.FromPretrained(folder);
        var recorder = new RecordingDenoiser(loaded.Models.Denoiser);
        // The new pipeline owns the modules (through the recorder); the loaded one is only a source of parts.
        var pipe = new StableDiffusionPipeline(loaded.Tokenizer, loaded.Tokenizer2, loaded.Models with { Denoiser = recorder }, loaded.Xl,
            loaded.SchedulerConfig, loaded.ModelName);
        return (pipe, recorder);
    }

    /// <summary>
    /// The U-Net's rows are [negative × n, positive × n] for the embeddings, so the time ids must be too. diffusers'
    /// StableDiffusionXLPipeline (0.30.3) concatenates [negative, positive] first and repeats after, which gives alternating
    /// rows [neg, pos, neg, pos, …] against [neg, neg, pos, pos] embeddings once n > 1 and the negative sizes differ (its
    /// img2img and inpainting pipelines repeat first, as here); this pipeline keeps every image's rows aligned.
    /// </summary>
    [Fact]
    public void TimeIdRowsFollowTheEmbeddingRowsWithSeveralImagesAndNegativeSizeConditioning()
    {
        var (pipe, recorder) = Recorded(SdxlPipelineTests.TinyXl);
        using (pipe)
        {
            var request = new GenerationRequest
            {
                Prompt = "a horse", NegativePrompt = "blurry", Steps = 2, GuidanceScale = 5, Width = 64, Height = 64, Seed = 3, Sampler = "euler",
                NumImages = 2, BatchSize = 2,
                Xl = new XlOptions
                {
                    OriginalSize = new PixelSize(128, 96), CropsCoordsTopLeft = new CropCoords(0, 4), TargetSize = new PixelSize(64, 64),
                    NegativeOriginalSize = new PixelSize(32, 48), NegativeCropsCoordsTopLeft = new CropCoords(8, 16), NegativeTargetSize = new PixelSize(40, 56),
                },
            };
            using var batch = pipe.TextToImage(request);
            double[] negative = [32, 48, 8, 16, 40, 56], positive = [128, 96, 0, 4, 64, 64];
            Assert.Equal([negative, negative, positive, positive], recorder.TimeIds[0]);
            // the pooled text embeddings are ordered the same way: two equal negative rows, then two equal positive ones
            var pooled = recorder.TextEmbeds[0];
            Assert.Equal(pooled[0], pooled[1]);
            Assert.Equal(pooled[2], pooled[3]);
            Assert.NotEqual(pooled[0], pooled[2]);

            // so each image of the batch is the image made alone with its seed
            using var first = pipe.TextToImage(request with { NumImages = 1, BatchSize = 1 });
            using var second = pipe.TextToImage(request with { NumImages = 1, BatchSize = 1, Seed = 4 });
            using var alone = Tensor.Cat([first.Latents, second.Latents]);
            TensorAssert.Close(batch.Latents, alone, 1e-4, 1e-4, "a batch of two vs each image alone");
            // and the negative size conditioning matters here (a row given the other half's ids would change the image)
            using var plainNegative = pipe.TextToImage(request with { NumImages = 1, BatchSize = 1, Xl = request.Xl with { NegativeOriginalSize = null, NegativeTargetSize = null } });
            Assert.True(TensorAssert.MaxAbsDifference(plainNegative.Latents, first.Latents) > 1e-3, "the negative sizes must condition the image");
        }
    }

    /// <summary>diffusers' timesteps for a "leading" schedule with steps_offset 1 (SDXL's Euler config); a second-order scheduler repeats every one after the first.</summary>
    private static List<double> LeadingTimesteps(int steps, int order)
    {
        var ratio = 1000 / steps;
        var ts = Enumerable.Range(0, steps).Select(i => (double)(i * ratio + 1)).Reverse().ToList();
        return order == 1 ? ts : [ts[0], .. ts.Skip(1).SelectMany(t => new[] { t, t })];
    }

    [Theory]
    [InlineData("euler", 1, 10, 0.8)]
    [InlineData("heun", 2, 8, 0.75)]
    public void HandOffRunsExactlyTheTimestepsDiffusersWould(string sampler, int order, int steps, double switchAt)
    {
        var (pipe, calls) = Recording(SdxlPipelineTests.TinyXl);
        using (pipe)
        {
            var request = new GenerationRequest { Prompt = "a horse", Steps = steps, GuidanceScale = 5, Width = 64, Height = 64, Seed = 3, Sampler = sampler };
            // diffusers (StableDiffusionXLPipeline, denoising_end): keep the timesteps ≥ round(1000 − end·1000);
            // (StableDiffusionXLImg2ImgPipeline.get_timesteps, denoising_start): the last n < round(1000 − start·1000), n odd for order 2.
            var all = LeadingTimesteps(steps, order);
            var cutoff = (int)Math.Round(1000 - switchAt * 1000);
            var expectedBase = all.Take(all.Count(t => t >= cutoff)).ToList();
            var n = all.Count(t => t < cutoff);
            if (order == 2 && n % 2 == 0) n++;
            var expectedRefiner = all.Skip(all.Count - n).ToList();

            using var first = pipe.TextToImage(request with { Xl = new XlOptions { DenoisingEnd = switchAt } });
            Assert.Equal(expectedBase, calls);
            calls.Clear();
            using var refined = pipe.Refine(request, first.Latents, switchAt);
            Assert.Equal(expectedRefiner, calls);

            if (order == 1)
            {
                // Euler is deterministic: base to the switch + the rest from the handed-over latents = one full run.
                calls.Clear();
                using var full = pipe.TextToImage(request);
                Assert.Equal(all, calls);
                TensorAssert.Close(refined.Latents, full.Latents, 1e-5, 1e-5, "base(end) + refine(start) vs the full run");
            }
        }
    }

    /// <summary>diffusers' output_type="latent" on the base: the hand-off gives the same result without the base's VAE decode.</summary>
    [Fact]
    public void TheBaseHandsItsLatentsOnWithoutDecodingThem()
    {
        var loaded = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);
        var vae = new CountingAutoencoder(loaded.Models.Autoencoder);
        using var pipe = new StableDiffusionPipeline(loaded.Tokenizer, loaded.Tokenizer2, loaded.Models with { Autoencoder = vae }, loaded.Xl,
            loaded.SchedulerConfig, loaded.ModelName);
        var request = new GenerationRequest
        {
            Prompt = "a horse", Steps = 6, GuidanceScale = 5, Width = 64, Height = 64, Seed = 3, Sampler = "euler", NumImages = 2,
            Xl = new XlOptions { DenoisingEnd = 0.7 },
        };
        using var decodedBase = pipe.TextToImage(request);
        Assert.Equal(1, vae.Decodes);
        using var latentBase = pipe.TextToImage(request with { LatentOutput = true });
        Assert.Equal(1, vae.Decodes); // the base's VAE did not run
        Assert.Empty(latentBase.Images);
        Assert.Equal([0L, 64, 64, 3], latentBase.Pixels.Shape);
        Assert.Equal(decodedBase.Parameters, latentBase.Parameters);
        Assert.True(latentBase.Latents.Equal(decodedBase.Latents), "the same latents, undecoded");

        using var fromDecoded = pipe.Refine(request, decodedBase.Latents, 0.7);
        using var fromLatents = pipe.Refine(request, latentBase.Latents, 0.7);
        Assert.Equal(3, vae.Decodes); // the refiner's decodes only
        Assert.True(fromLatents.Pixels.Equal(fromDecoded.Pixels), "the hand-off result is unchanged");
        Assert.Equal(2, fromLatents.Images.Count);
    }

    [Fact]
    public void TinyRefinerConditionsOnTheAestheticScore()
    {
        using var dir = new TinyXlFolder();
        dir.MakeRefiner();
        using var baseModel = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);
        using var refiner = StableDiffusionPipeline.FromPretrained(dir.Path);
        Assert.True(refiner.IsRefiner);
        Assert.Null(refiner.Tokenizer2);
        var request = new GenerationRequest { Prompt = "a horse", NegativePrompt = "blurry", Steps = 6, GuidanceScale = 5, Width = 64, Height = 64, Seed = 5 };
        using var latents = baseModel.TextToImage(request with { Xl = new XlOptions { DenoisingEnd = 0.7 } });
        using var refined = refiner.Refine(request, latents.Latents, 0.7);
        using var lessAesthetic = refiner.Refine(request with { Xl = new XlOptions { AestheticScore = 2.0 } }, latents.Latents, 0.7);
        Assert.DoesNotContain(TensorAssert.Values(refined.Latents), v => !double.IsFinite(v));
        Assert.True(TensorAssert.MaxAbsDifference(refined.Latents, lessAesthetic.Latents) > 1e-4, "the aesthetic score must condition the refiner");
        Assert.Equal(64, refined.Images[0].Width);
    }

    [Fact]
    public void FolderWithOneTextEncoderIsOneLine()
    {
        using var dir = new TinyXlFolder();
        dir.EditIndex(index => index.Remove("text_encoder_2"));
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("text_encoder_2", e.Message);
        Assert.Contains("only text_encoder", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MismatchedCrossAttentionDimIsOneLine()
    {
        using var dir = new TinyXlFolder();
        dir.EditJson("unet/config.json", unet => unet["cross_attention_dim"] = 128);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("32 + 64 = 96 channels but the U-Net's cross_attention_dim is 128", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void BaseUNetMarkedAsRefinerIsOneLine()
    {
        using var dir = new TinyXlFolder();
        dir.EditIndex(index => index["requires_aesthetics_score"] = true);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("requires_aesthetics_score is true (5 time ids)", e.Message);
        Assert.Contains("projection_class_embeddings_input_dim is 80", e.Message);
    }

    [Fact]
    public void XlOptionsOnAnSd15ModelAndDenoisingStartWithoutLatentsAreRefused()
    {
        using var xl = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);
        var e = Assert.Throws<ArgumentException>(() => xl.TextToImage(new GenerationRequest { Prompt = "x", Xl = new XlOptions { DenoisingStart = 0.5 } }));
        Assert.Contains("denoising start continues given latents", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => xl.TextToImage(new GenerationRequest { Prompt = "x", Xl = new XlOptions { DenoisingEnd = 1.5 } }));
        // 4 steps run [751, 501, 251, 1]: an end of 0.2 keeps only t ≥ 800, none of them.
        var empty = Assert.Throws<ArgumentOutOfRangeException>(() => xl.TextToImage(new GenerationRequest { Prompt = "x", Steps = 4, Xl = new XlOptions { DenoisingEnd = 0.2 } }));
        Assert.Contains("leaves no denoising step", empty.Message);

        var sd = System.IO.Directory.CreateTempSubdirectory("ldm-sd-tiny-").FullName;
        try
        {
            using var sd15 = StableDiffusionPipeline.FromPretrained(TinyStableDiffusionFolder.Assemble(sd));
            var notXl = Assert.Throws<ArgumentException>(() => sd15.TextToImage(new GenerationRequest { Prompt = "x", Xl = new XlOptions { Prompt2 = "y" } }));
            Assert.Contains("is not an SDXL model", notXl.Message);
        }
        finally
        {
            System.IO.Directory.Delete(sd, recursive: true);
        }
    }

    [Fact]
    public void ForceUpcastKeepsTheVaeInFloat32UnderBf16UnlessTheVaeSaysOtherwise()
    {
        var options = new PipelineOptions { DType = DType.BFloat16 };
        var request = new GenerationRequest { Prompt = "a horse", Steps = 2, GuidanceScale = 5, Width = 64, Height = 64, Seed = 1 };
        using (var upcast = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl, options))
        {
            Assert.Equal(DType.Float32, upcast.Models.Autoencoder.DType);
            Assert.Equal(DType.Float32, upcast.Vae.Parameters().First().DType);
            Assert.Equal(DType.BFloat16, upcast.Unet.Parameters().First().DType);
            using var result = upcast.TextToImage(request);
            Assert.DoesNotContain(TensorAssert.Values(result.Pixels), v => !double.IsFinite(v));
        }
        using var dir = new TinyXlFolder();
        dir.EditJson("vae/config.json", vae => vae["force_upcast"] = false);
        using var plain = StableDiffusionPipeline.FromPretrained(dir.Path, options);
        Assert.Equal(DType.BFloat16, plain.Models.Autoencoder.DType);
    }

    /// <summary>An autoencoder that counts its decodes, through the engine interface.</summary>
    private sealed class CountingAutoencoder(IAutoencoder inner) : IAutoencoder
    {
        public int Decodes { get; private set; }
        public int DownscaleFactor => inner.DownscaleFactor;
        public int LatentChannels => inner.LatentChannels;
        public DType DType => inner.DType;
        public Autoencoder.DiagonalGaussianDistribution Encode(Tensor pixels) => inner.Encode(pixels);

        public Tensor Decode(Tensor latents)
        {
            Decodes++;
            return inner.Decode(latents);
        }

        public Tensor ScaleLatents(Tensor z) => inner.ScaleLatents(z);
        public Tensor UnscaleLatents(Tensor latents) => inner.UnscaleLatents(latents);
        public double EstimateDecodeBytes(long height, long width, long images, bool fusedAttention) => inner.EstimateDecodeBytes(height, width, images, fusedAttention);
        public void Dispose() => inner.Dispose();
    }

    private sealed class RecordingDenoiser(IDenoiser inner) : IDenoiser
    {
        public List<double> Calls { get; } = [];

        /// <summary>Each call's time ids and pooled text embeddings, row by row.</summary>
        public List<double[][]> TimeIds { get; } = [];
        public List<double[][]> TextEmbeds { get; } = [];
        public int LatentChannels => inner.LatentChannels;
        public int InChannels => inner.InChannels;
        public int[]? SampleSize => inner.SampleSize;

        public Tensor Forward(Tensor sample, double timestep, DenoiserConditioning conditioning)
        {
            Calls.Add(timestep);
            if (conditioning.TimeIds is { } ids) TimeIds.Add(Rows(ids));
            if (conditioning.TextEmbeds is { } embeds) TextEmbeds.Add(Rows(embeds));
            return inner.Forward(sample, timestep, conditioning);
        }

        private static double[][] Rows(Tensor t)
        {
            var values = TensorAssert.Values(t);
            var width = (int)t.Size(1);
            return [.. Enumerable.Range(0, (int)t.Size(0)).Select(r => values.Skip(r * width).Take(width).ToArray())];
        }

        public double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention) =>
            inner.EstimateStepBytes(latentHeight, latentWidth, rows, elementSize, attention);

        public void Dispose() => inner.Dispose();
    }
}
