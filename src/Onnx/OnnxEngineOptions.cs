using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>How ONNX Runtime runs a model: the execution provider's device and the CPU threads.</summary>
public sealed record OnnxEngineOptions
{
    /// <summary>The CPU execution provider, or CUDA's on this device (the Microsoft.ML.OnnxRuntime.Gpu.Linux build, CUDA 13, cuDNN 9).</summary>
    public Device Device { get; init; } = Device.CPU;

    /// <summary>Intra-op threads; null: libtorch's own count (<see cref="TorchRuntime.Threads"/>), so both engines use the same cores.</summary>
    public int? Threads { get; init; }

    /// <summary>Where ONNX Runtime's profiler writes its JSON trace (a path prefix; SessionOptions.EnableProfiling), or null for no profile (`ldm bench unet --engine onnx --profile`).</summary>
    public string? ProfilePrefix { get; init; }
}
