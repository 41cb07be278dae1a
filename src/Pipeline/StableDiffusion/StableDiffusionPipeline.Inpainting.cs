using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// Inpainting (diffusers' StableDiffusionInpaintPipeline) through the one denoising loop: what it adds is the start
// latents, the U-Net input of a 9-channel model and the re-blend of the known region after each step of a 4-channel one.
public sealed partial class StableDiffusionPipeline
{
    /// <summary>
    /// Repaints the white part of the request's mask. Inpainting U-Nets (in_channels = 2 × latent channels + 1) see the
    /// mask and the masked image's latents; an ordinary U-Net gets the known region re-noised from the image and blended
    /// back after every step. Same seed, same noise draws as diffusers: [image VAE sample (4-channel model or strength
    /// &lt; 1)], noise, masked-image VAE sample (drawn but not computed for a 4-channel model), then A1111's latent-noise
    /// fill last. With <see cref="InpaintRequest.MaskBlur"/> or <see cref="InpaintRequest.OnlyMasked"/> the images are
    /// pasted over the original through the (blurred) mask; <see cref="GenerationResult.Latents"/> and
    /// <see cref="GenerationResult.Pixels"/> stay the denoised output (of the crop, for only-masked).
    /// </summary>
    public GenerationResult Inpaint(InpaintRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default, INoiseSource? noise = null, CancellationToken interrupt = default)
    {
        Validate(request);
        var init = request.InitImage.ToRgb();
        // diffusers' mask processor resizes the grayscale mask (Lanczos) to the image before binarising it
        var mask = InpaintMask.Prepare(request.MaskImage, init.Width, init.Height, request.MaskBlur);
        var (width, height) = OutputSize(request, init);
        _ = PlanBatches(request, width, height, chunkable: noise is null or BatchNoise); // an impossible size is refused before the images are resized to it

        if (request.OnlyMasked)
        {
            // diffusers' padding_mask_crop: work on the crop at the full output size, paste it back through the mask
            var crop = InpaintMask.CropRegion(mask, width, height, request.Padding);
            var (cw, ch) = (crop.X2 - crop.X1, crop.Y2 - crop.Y1);
            var image = init.Crop(crop.X1, crop.Y1, cw, ch).ResizeAndCrop(width, height);
            var cropMask = mask.Crop(crop.X1, crop.Y1, cw, ch).ResizeAndCrop(width, height);
            var result = Generate(request with { Width = width, Height = height }, image, request.Strength, progress, cancellation, noise, cropMask, interrupt);
            return result with { Images = [.. result.Images.Select(g => InpaintMask.Overlay(init, mask, g, crop))] };
        }

        var sized = Fit(init, width, height);
        var sizedMask = Fit(mask, width, height);
        var full = Generate(request, sized, request.Strength, progress, cancellation, noise, sizedMask, interrupt);
        // A1111 pastes the original back through the blurred mask; without blur diffusers' output is returned as it is.
        return request.MaskBlur == 0 ? full : full with { Images = [.. full.Images.Select(g => InpaintMask.Overlay(sized, sizedMask, g))] };
    }

    /// <summary>True for an inpainting U-Net (more input channels than latent channels: it takes the mask and the masked image).</summary>
    public bool IsInpaintingModel => Models.Denoiser.InChannels != Models.Denoiser.LatentChannels;

    private static RgbImage Fit(RgbImage image, int width, int height) =>
        image.Width == width && image.Height == height ? image : image.ResizeAndCrop(width, height);

    /// <summary>
    /// A U-Net whose input is wider than its latents is an inpainting model: refuse a request without a mask (one line),
    /// and any input width other than diffusers' two layouts (in_channels = latent channels, or 2 × latent channels + 1).
    /// </summary>
    private void CheckInpaintingInput(GenerationRequest request)
    {
        var (inChannels, latentChannels) = (Models.Denoiser.InChannels, Models.Denoiser.LatentChannels);
        if (inChannels == latentChannels) return;
        if (inChannels != 2 * latentChannels + 1)
            throw new InvalidDataException($"{ModelName}: the U-Net takes {inChannels} input channels for {latentChannels} latent channels; "
                + $"supported are {latentChannels} (ordinary) and {2 * latentChannels + 1} (inpainting: latents, mask, masked-image latents)");
        if (request is not InpaintRequest)
            throw new InvalidOperationException($"{ModelName} is an inpainting model ({inChannels} input channels): it needs an init image and a mask (ldm inpaint --init IMAGE --mask MASK)");
    }

    /// <summary>The sample of q(z | pixels) scaled to the diffusion space (diffusers' _encode_vae_image): one noise draw.</summary>
    private Tensor ImageLatents(Tensor pixels, INoiseSource noise)
    {
        using var scope = DisposeScope.Enter();
        var vae = Models.Autoencoder;
        using var posterior = vae.Encode(pixels.To(Options.Device, vae.DType));
        var sample = posterior.Sample(noise.Next(posterior.Mean.Shape, posterior.Mean.DType, Options.Device));
        return scope.Keep(vae.ScaleLatents(sample).To(DType.Float32));
    }

    /// <summary>
    /// diffusers' prepare_latents (return_noise, return_image_latents for a 4-channel U-Net) and prepare_mask_latents for
    /// one chunk, in its draw order; the start latents are <see cref="InpaintLatents.Start"/>.
    /// </summary>
    private InpaintLatents PrepareInpainting(GenerationRequest r, RgbImage image, RgbImage grayMask, double strength, Chunk chunk, bool guided,
        IScheduler scheduler, double firstTimestep, INoiseSource source)
    {
        using var scope = DisposeScope.Enter();
        var n = chunk.Count;
        var f = VaeScaleFactor;
        var dtype = Options.DType;
        var ordinary = Models.Denoiser.InChannels == Models.Denoiser.LatentChannels;
        long[] latentShape = [n, Models.Autoencoder.LatentChannels, image.Height / f, image.Width / f];

        var one = image.ToTensor();
        var pixels = n == 1 ? one : one.Repeat(n, 1, 1, 1);
        // mask_condition: grayscale / 255 binarised at 0.5 at full size (1 = repaint); the latent mask takes the
        // nearest pixel of each cell (torch's interpolate, not an average).
        var condition = Tensor.From(grayMask.ToLuma().Select(v => v >= 128 ? 1f : 0f).ToArray(), 1, 1, grayMask.Height, grayMask.Width);
        var latentMask = Functional.Interpolate(condition, (latentShape[2], latentShape[3])).Repeat(n, 1, 1, 1).To(Options.Device, dtype);

        var strengthMax = strength >= 1;
        // diffusers encodes the image for the 4-channel re-blend, or to start from it (not from given latents)
        var encodesImage = ordinary || (!strengthMax && r.Latents is null);
        // every masked content but "original" encodes the image with its masked area filled from the colours around it
        // (A1111 fills the pixels for "latent noise" and "latent nothing" too, before replacing the latents under the mask)
        var encoded = pixels;
        if (r is InpaintRequest { MaskedContent: not MaskedContent.Original } && encodesImage)
        {
            var filled = MaskedFill.Fill(image, grayMask).ToTensor();
            encoded = n == 1 ? filled : filled.Repeat(n, 1, 1, 1);
        }
        var imageLatents = encodesImage ? ImageLatents(encoded, source) : null;
        var noise = InitialNoise(r, chunk, image.Width, image.Height, source);
        var masked = pixels * condition.Lt(0.5);
        Tensor? maskedLatents = null;
        if (ordinary) source.Next(latentShape, DType.Float32, Options.Device); // diffusers encodes it (and draws) for the 4-channel U-Net too, unused
        else maskedLatents = ImageLatents(masked, source).To(dtype);

        // A1111's masked content changes the image latents under the mask, for the start only (the re-blend keeps the
        // unmasked region, which the fill does not touch).
        var startImage = imageLatents;
        if (imageLatents is not null && r is InpaintRequest { MaskedContent: MaskedContent.LatentNoise or MaskedContent.LatentNothing } inpaint)
        {
            var keep = 1 - latentMask.To(DType.Float32);
            startImage = inpaint.MaskedContent == MaskedContent.LatentNoise
                ? imageLatents * keep + source.Next(latentShape, DType.Float32, Options.Device) * (1 - keep)
                : imageLatents * keep;
        }

        Tensor start;
        if (r.Latents is not null || strengthMax) start = noise * scheduler.InitNoiseSigma;
        else
        {
            var t = Tensors.Full([n], firstTimestep, scheduler.TimestepDType, Options.Device);
            start = scheduler.AddNoise(startImage!, noise, t);
        }

        var cfgMask = guided ? Tensor.Cat([latentMask, latentMask]) : latentMask.Alias();
        var cfgMasked = maskedLatents is null ? null : guided ? Tensor.Cat([maskedLatents, maskedLatents]) : maskedLatents;
        return new InpaintLatents(
            scope.Keep(start.To(dtype)), scope.Keep(latentMask), scope.Keep(cfgMask), cfgMasked is null ? null : scope.Keep(cfgMasked),
            ordinary ? scope.Keep(imageLatents!.To(dtype)) : null, ordinary ? scope.Keep(noise.To(dtype)) : null);
    }

    /// <summary>The inpainting tensors of one chunk; the loop asks it for the U-Net input and the latents after a step.</summary>
    private sealed class InpaintLatents(Tensor start, Tensor mask, Tensor cfgMask, Tensor? maskedImageLatents, Tensor? imageLatents, Tensor? noise) : IDisposable
    {
        private Tensor? startLatents = start;

        /// <summary>The start latents, handed over once (the caller owns them).</summary>
        public Tensor Start()
        {
            var s = startLatents ?? throw new InvalidOperationException("the start latents were taken already");
            startLatents = null;
            return s;
        }

        /// <summary>9-channel U-Net: cat([scale_model_input(latents), mask, masked_image_latents], dim 1), in that order.</summary>
        public Tensor ModelInput(Tensor scaled) =>
            maskedImageLatents is null ? scaled : Tensor.Cat([scaled, cfgMask, maskedImageLatents], 1);

        /// <summary>
        /// 4-channel U-Net, after step <paramref name="i"/>: (1 − m)·add_noise(image_latents, noise, timesteps[i + 1]) + m·latents
        /// with the start's noise; after the last step the image latents themselves.
        /// </summary>
        public Tensor AfterStep(Tensor latents, IScheduler scheduler, IReadOnlyList<double> timesteps, int i)
        {
            if (imageLatents is null) return latents;
            if (i == timesteps.Count - 1) return Blend(imageLatents, latents);
            using var scope = DisposeScope.Enter();
            var t = Tensors.Full([1], timesteps[i + 1], scheduler.TimestepDType, latents.Device);
            return scope.Keep(Blend(scheduler.AddNoise(imageLatents, noise!, t), latents));
        }

        /// <summary>
        /// The latents an interrupted run returns, a new tensor: <paramref name="clean"/> (the step's prediction) under the mask
        /// and, for a 4-channel U-Net, the image latents outside it, as a finished run keeps them after its last step.
        /// </summary>
        public Tensor Interrupted(Tensor clean) => imageLatents is null ? clean.Clone() : Blend(imageLatents, clean);

        /// <summary>(1 − m)·known + m·latents.</summary>
        private Tensor Blend(Tensor known, Tensor latents)
        {
            using var scope = DisposeScope.Enter();
            return scope.Keep((1 - mask) * known + mask * latents);
        }

        public void Dispose()
        {
            startLatents?.Dispose();
            mask.Dispose();
            cfgMask.Dispose();
            maskedImageLatents?.Dispose();
            imageLatents?.Dispose();
            noise?.Dispose();
        }
    }

    /// <summary>A1111's inpainting fields of the PNG parameters (after "Denoising strength").</summary>
    private static IEnumerable<KeyValuePair<string, string>> InpaintParameters(InpaintRequest r)
    {
        yield return new("Mask blur", r.MaskBlur.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (r.OnlyMasked)
        {
            yield return new("Inpaint area", "Only masked");
            yield return new("Masked area padding", r.Padding.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (r.MaskedContent != MaskedContent.Original)
            yield return new("Masked content", r.MaskedContent switch { MaskedContent.LatentNoise => "latent noise", MaskedContent.LatentNothing => "latent nothing", _ => "fill" });
    }
}
