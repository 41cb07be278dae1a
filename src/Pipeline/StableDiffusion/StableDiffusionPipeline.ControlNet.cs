using System.Globalization;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// ControlNet (diffusers' StableDiffusionControlNetPipeline and MultiControlNetModel): what it adds to the one denoising
// loop is the conditioning of each U-Net call (ControlNetStep); the loop itself is unchanged.
public sealed partial class StableDiffusionPipeline
{
    /// <summary>
    /// Loads a ControlNet for this pipeline from a diffusers folder (config.json + weights) or a single-file checkpoint
    /// (control_model.* keys; its architecture is this pipeline's U-Net's, as diffusers' from_unet), on the pipeline's
    /// device and dtype, and checks that it fits this pipeline's U-Net.
    /// </summary>
    public IControlNet LoadControlNet(string path)
    {
        var name = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)));
        var model = File.Exists(path)
            ? ControlNetCheckpoint.Load(path, Unet.Config, Options.Device, Options.DType)
            : ControlNetModel.FromPretrained(path, Options.Device, Options.DType, Options.Variant);
        var controlNet = new TorchControlNet(model, name);
        try
        {
            controlNet.CheckFits(Models.Denoiser);
            return controlNet;
        }
        catch
        {
            controlNet.Dispose();
            throw;
        }
    }

    private void ValidateControlNets(GenerationRequest r)
    {
        foreach (var unit in r.ControlNets) unit.Model.CheckFits(Models.Denoiser);
    }

    /// <summary>The ControlNet conditioning of one chunk's loop; null when the request has no ControlNet.</summary>
    private ControlNetStep? PrepareControlNets(GenerationRequest r, int count, int width, int height, bool guided, int timesteps) =>
        r.ControlNets.Count == 0 ? null : new ControlNetStep(r, count, width, height, guided, timesteps, Options.Device, Options.DType);

    /// <summary>
    /// What the ControlNets add to a step's peak: the largest one's forward (they run one after another) held beside the
    /// U-Net's, an upper bound since their residuals are smaller than their activations.
    /// </summary>
    private static double ControlNetStepBytes(GenerationRequest r, long latentHeight, long latentWidth, long rows, int element, AttentionCost attention) =>
        r.ControlNets.Select(u => u.Model.EstimateStepBytes(latentHeight, latentWidth, rows, element, attention)).DefaultIfEmpty(0).Max();

    /// <summary>"ControlNet N" fields as AUTOMATIC1111's ControlNet extension writes them.</summary>
    private static IEnumerable<KeyValuePair<string, string>> ControlNetParameters(GenerationRequest r) =>
        r.ControlNets.Select((unit, i) => new KeyValuePair<string, string>($"ControlNet {i}", ControlNetStep.Describe(unit, r.GuessMode)));
}

/// <summary>
/// The ControlNets' part of each denoising step (diffusers' StableDiffusionControlNetPipeline.__call__): the control images
/// as float [0, 1] NCHW at the output size, repeated per image and, under classifier-free guidance without guess mode,
/// duplicated for [uncond; cond]; per step the residuals of every ControlNet whose guidance window contains the step,
/// summed (MultiControlNet).
/// </summary>
internal sealed class ControlNetStep : IDisposable
{
    private readonly IReadOnlyList<ControlNetUnit> units;
    private readonly List<Tensor> images = [];
    private readonly bool guided;
    private readonly bool guessMode;
    private readonly int timesteps;

    public ControlNetStep(GenerationRequest r, int count, int width, int height, bool guided, int timesteps, Device device, DType dtype)
    {
        units = r.ControlNets;
        this.guided = guided;
        this.timesteps = timesteps;
        // diffusers: guess_mode = guess_mode or global_pool_conditions
        guessMode = r.GuessMode || units.Any(u => u.Model.GlobalPoolConditions);
        try
        {
            foreach (var unit in units) images.Add(ControlImage(unit, count, width, height, guided && !guessMode, device, dtype));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// diffusers' prepare_image: RGB, fitted to the output (Lanczos; see FitControlImage), /255 without [−1, 1] normalisation. A
    /// preprocessor runs on the resized photo, so that its map has the output's resolution (A1111 runs it near it too).
    /// </summary>
    private static Tensor ControlImage(ControlNetUnit unit, int count, int width, int height, bool duplicate, Device device, DType dtype)
    {
        using var scope = DisposeScope.Enter();
        var rgb = FitControlImage(unit, width, height);
        var t = rgb.ToUnitTensor().To(device, dtype);
        if (count > 1) t = t.Repeat(count, 1, 1, 1);
        if (duplicate) t = Tensor.Cat([t, t]);
        return scope.Keep(t);
    }

    /// <summary>
    /// The control image at the output size, as the unit's resize mode fits it, the preprocessor run on the fitted photo. For
    /// Resize and Fill the preprocessor runs before the fill (the extension fills around the detected map), so that the
    /// border between the photo and the fill is not an edge.
    /// </summary>
    internal static RgbImage FitControlImage(ControlNetUnit unit, int width, int height)
    {
        var rgb = unit.Image.ToRgb();
        if (unit.ResizeMode == ControlResizeMode.ResizeAndFill)
        {
            rgb = rgb.ResizeToFit(width, height);
            if (unit.Preprocessor is { } fitted) rgb = fitted.Apply(rgb);
            return rgb.Width == width && rgb.Height == height ? rgb : rgb.FillTo(width, height);
        }
        if (unit.ResizeMode == ControlResizeMode.CropAndResize) rgb = rgb.CropToAspect(width, height);
        if (rgb.Width != width || rgb.Height != height) rgb = rgb.Resize(width, height);
        return unit.Preprocessor is { } preprocessor ? preprocessor.Apply(rgb) : rgb;
    }

    /// <summary>
    /// The denoiser's conditioning at step <paramref name="i"/>: the text states plus the summed residuals. Called inside the
    /// step's dispose scope, which frees the residuals. <paramref name="scaled"/> is the scheduler-scaled model input.
    /// </summary>
    public DenoiserConditioning Condition(int i, Tensor scaled, double t, DenoiserConditioning prompt)
    {
        var embeddings = prompt.EncoderHiddenStates;
        // guess mode under guidance: the ControlNets see the conditional half only
        var halves = guessMode && guided;
        var input = halves ? scaled.Chunk(2)[1] : scaled;
        var text = halves ? embeddings.Chunk(2)[1] : embeddings;
        List<Tensor>? down = null;
        Tensor? mid = null;
        for (int u = 0; u < units.Count; u++)
        {
            var unit = units[u];
            // diffusers' controlnet_keep: 0 outside [start, end) of the steps; it still runs the ControlNet at scale 0,
            // which adds exact zeros, so it is skipped here.
            var outside = (double)i / timesteps < unit.GuidanceStart || (double)(i + 1) / timesteps > unit.GuidanceEnd;
            if (outside || unit.Scale == 0) continue;
            var residuals = unit.Model.Forward(input, t, text, images[u], unit.Scale, guessMode);
            if (down is null)
            {
                down = [.. residuals.Down];
                mid = residuals.Mid;
                continue;
            }
            if (residuals.Down.Count != down.Count)
                throw new ArgumentException($"ControlNet {u} ({unit.Model.Name}) gives {residuals.Down.Count} residuals but ControlNet 0 gives {down.Count}: their block layouts differ");
            for (int k = 0; k < down.Count; k++) down[k] = down[k] + residuals.Down[k];
            mid = mid! + residuals.Mid;
        }
        if (down is null) return prompt;
        if (halves)
        {
            // the unconditional half gets zeros
            down = down.Select(d => Tensor.Cat([Tensors.ZerosLike(d), d])).ToList();
            mid = Tensor.Cat([Tensors.ZerosLike(mid!), mid!]);
        }
        return prompt with { DownBlockAdditionalResiduals = down, MidBlockAdditionalResidual = mid };
    }

    /// <summary>
    /// A unit as AUTOMATIC1111's ControlNet extension records it: "Module: canny, Model: …, Weight: 1, …". Guess mode is
    /// recorded as its nearest control mode, "ControlNet is more important".
    /// </summary>
    public static string Describe(ControlNetUnit unit, bool guessMode)
    {
        static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        var fields = new List<string>
        {
            $"Module: {unit.Preprocessor?.Module ?? "none"}",
            $"Model: {unit.Model.Name}",
            $"Weight: {F(unit.Scale)}",
            $"Resize Mode: {unit.ResizeMode.Name()}",
        };
        if (unit.Preprocessor is { } preprocessor) fields.AddRange(preprocessor.Settings.Select(s => $"{s.Key}: {s.Value}"));
        fields.Add($"Guidance Start: {F(unit.GuidanceStart)}");
        fields.Add($"Guidance End: {F(unit.GuidanceEnd)}");
        fields.Add("Pixel Perfect: False");
        fields.Add($"Control Mode: {(guessMode ? "ControlNet is more important" : "Balanced")}");
        return string.Join(", ", fields);
    }

    public void Dispose()
    {
        foreach (var image in images) image.Dispose();
    }
}
