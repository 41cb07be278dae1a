using System.Collections.Concurrent;
using LatentDiffusion.Torch;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = LatentDiffusion.Torch.Tensor;

namespace LatentDiffusion.Onnx;

/// <summary>Our tensors as ONNX Runtime values: the same memory, no copy; and the dtype mapping between the two.</summary>
internal static class OnnxTensors
{
    private static readonly ConcurrentDictionary<int, OrtMemoryInfo> CudaMemory = new();

    /// <summary>An OrtValue over <paramref name="t"/>'s elements (CPU or CUDA memory): valid while <paramref name="t"/> lives.</summary>
    public static OrtValue View(Tensor t)
    {
        var device = t.Device;
        var memory = device.Type == DeviceType.Cpu
            ? OrtMemoryInfo.DefaultInstance
            : CudaMemory.GetOrAdd(device.Index, i => new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, i, OrtMemType.Default));
        return OrtValue.CreateTensorValueWithData(memory, ElementType(t.DType), t.Shape, t.DataPointer, t.NumEl * t.DType.ElementSize());
    }

    /// <summary><paramref name="t"/> in <paramref name="dtype"/>, contiguous: itself when it already is (the caller disposes only what differs).</summary>
    public static Tensor Prepare(Tensor t, DType dtype)
    {
        if (t.DType == dtype && t.IsContiguous) return t;
        using var converted = t.To(dtype);
        return converted.Contiguous();
    }

    public static TensorElementType ElementType(DType dtype) => dtype switch
    {
        DType.Float32 => TensorElementType.Float,
        DType.Float16 => TensorElementType.Float16,
        DType.BFloat16 => TensorElementType.BFloat16,
        DType.Float64 => TensorElementType.Double,
        DType.Int64 => TensorElementType.Int64,
        DType.Int32 => TensorElementType.Int32,
        DType.Int16 => TensorElementType.Int16,
        DType.Int8 => TensorElementType.Int8,
        DType.UInt8 => TensorElementType.UInt8,
        DType.Bool => TensorElementType.Bool,
        _ => throw new NotSupportedException($"dtype {dtype} has no ONNX element type"),
    };

    public static DType DTypeOf(string path, string name, TensorElementType type) => type switch
    {
        TensorElementType.Float => DType.Float32,
        TensorElementType.Float16 => DType.Float16,
        TensorElementType.BFloat16 => DType.BFloat16,
        TensorElementType.Double => DType.Float64,
        TensorElementType.Int64 => DType.Int64,
        TensorElementType.Int32 => DType.Int32,
        TensorElementType.Int16 => DType.Int16,
        TensorElementType.Int8 => DType.Int8,
        TensorElementType.UInt8 => DType.UInt8,
        TensorElementType.Bool => DType.Bool,
        _ => throw new InvalidDataException($"{path}: '{name}' is {TypeName(type)}, which this engine cannot feed"),
    };

    public static string TypeName(TensorElementType type) => type switch
    {
        TensorElementType.Float => "float32",
        TensorElementType.Float16 => "float16",
        TensorElementType.Double => "float64",
        _ => type.ToString().ToLowerInvariant(),
    };
}
