using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// Which engine runs a Stable Diffusion model: ONNX Runtime for an ONNX folder (unet/model.onnx), libtorch for a diffusers
/// folder or a single-file checkpoint; <c>--engine</c> states it. The pipeline itself knows no engine: this is where the
/// command line and the server pick the loader, so that Pipeline never references Onnx.
/// </summary>
public static class ModelLoader
{
    public const string EngineHelp = "auto (ONNX Runtime for an ONNX folder, else libtorch), torch or onnx";

    /// <summary>Whether <paramref name="path"/> runs on ONNX Runtime under <paramref name="engine"/>; an unknown engine name throws.</summary>
    public static bool UsesOnnx(string? path, string? engine) => (engine ?? "auto") switch
    {
        "auto" => path is not null && OnnxStableDiffusion.IsOnnxFolder(path),
        "onnx" => true,
        "torch" => false,
        _ => throw new ArgumentException($"--engine must be {EngineHelp}, not '{engine}'"),
    };

    /// <summary>The pipeline for <paramref name="path"/> on the chosen engine; a model that engine cannot run is one line.</summary>
    public static StableDiffusionPipeline Load(string path, string? engine, PipelineOptions options)
    {
        var onnxFolder = OnnxStableDiffusion.IsOnnxFolder(path);
        if (!UsesOnnx(path, engine))
        {
            if (onnxFolder) throw new ArgumentException($"{path} is an ONNX model: --engine torch runs diffusers folders and checkpoints; use --engine onnx (or leave --engine out)");
            return StableDiffusionPipeline.FromPretrained(path, options);
        }
        if (!onnxFolder)
            throw new ArgumentException($"{path} is no ONNX model folder (no unet/model.onnx): --engine onnx runs the diffusers ONNX layout; write one with `ldm export onnx`");
        if (options.DType != DType.Float32)
            throw new ArgumentException($"--dtype {options.DType.ToString().ToLowerInvariant()}: an ONNX model runs in the dtype it was exported in; export it with --fp16 instead");
        if (options.AttentionSliceSize is not null || options.VaeTiling)
            throw new ArgumentException("--attention-slicing and --vae-tiling are libtorch options; an ONNX model runs its graph as exported");
        return OnnxStableDiffusion.FromPretrained(path, new OnnxEngineOptions { Device = options.Device }, options);
    }
}
