using LatentDiffusion.Torch;
using Microsoft.ML.OnnxRuntime;

namespace LatentDiffusion.Onnx;

/// <summary>
/// ONNX Runtime's SessionOptions as this project runs it: intra-op threads as libtorch uses them, every graph
/// optimisation, the CPU memory arena and memory patterns; the CUDA execution provider when the device asks for it.
/// </summary>
public static class OnnxRuntimeSetup
{
    private const string CudaProvider = "CUDAExecutionProvider";

    /// <summary>The execution providers this build of ONNX Runtime has (CPUExecutionProvider always).</summary>
    public static IReadOnlyList<string> AvailableProviders => OrtEnv.Instance().GetAvailableProviders();

    /// <summary>Whether this build carries the CUDA execution provider (the Microsoft.ML.OnnxRuntime.Gpu.Linux package, -p:OnnxGpu=true).</summary>
    public static bool HasCuda => AvailableProviders.Contains(CudaProvider);

    internal static SessionOptions SessionOptions(OnnxEngineOptions options)
    {
        var o = new SessionOptions
        {
            IntraOpNumThreads = options.Threads ?? TorchRuntime.Threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            EnableCpuMemArena = true,
            EnableMemoryPattern = true,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (options.ProfilePrefix is { } prefix)
        {
            o.EnableProfiling = true;
            o.ProfileOutputPathPrefix = prefix;
        }
        try
        {
            if (options.Device.Type == DeviceType.Cuda) AppendCuda(o, options.Device.Index);
            return o;
        }
        catch
        {
            o.Dispose();
            throw;
        }
    }

    /// <summary>Why ONNX Runtime cannot use CUDA in this build (one line naming the package and runtime it needs), or null when it can try.</summary>
    public static string? CudaMissing(int index) => HasCuda ? null
        : $"ONNX Runtime on cuda:{index} needs its CUDA build: this one has only {string.Join(", ", AvailableProviders)}; "
          + "build with -p:OnnxGpu=true (Microsoft.ML.OnnxRuntime.Gpu.Linux 1.32.0) and install the CUDA 13 runtime and cuDNN 9";

    private static void AppendCuda(SessionOptions o, int index)
    {
        if (CudaMissing(index) is { } missing) throw new NotSupportedException(missing);
        try
        {
            o.AppendExecutionProvider_CUDA(index);
        }
        catch (OnnxRuntimeException e)
        {
            throw new NotSupportedException($"ONNX Runtime's CUDA execution provider did not start on cuda:{index} (it needs the CUDA 13 runtime and cuDNN 9 libraries and a GPU): {OnnxSession.OneLine(e.Message)}", e);
        }
    }
}
