namespace LatentDiffusion.Torch;

/// <summary>Element types; the values are libtorch's ScalarType codes.</summary>
public enum DType
{
    UInt8 = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    Float16 = 5,
    Float32 = 6,
    Float64 = 7,
    Bool = 11,
    BFloat16 = 15,
}

public static class DTypeExtensions
{
    public static int ElementSize(this DType dtype) => dtype switch
    {
        DType.UInt8 or DType.Int8 or DType.Bool => 1,
        DType.Int16 or DType.Float16 or DType.BFloat16 => 2,
        DType.Int32 or DType.Float32 => 4,
        DType.Int64 or DType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public static bool IsFloatingPoint(this DType dtype) =>
        dtype is DType.Float16 or DType.BFloat16 or DType.Float32 or DType.Float64;

    /// <summary>The dtype that stores a .NET element type, e.g. float → Float32.</summary>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.Float32;
        if (typeof(T) == typeof(double)) return DType.Float64;
        if (typeof(T) == typeof(long)) return DType.Int64;
        if (typeof(T) == typeof(int)) return DType.Int32;
        if (typeof(T) == typeof(short)) return DType.Int16;
        if (typeof(T) == typeof(byte)) return DType.UInt8;
        if (typeof(T) == typeof(sbyte)) return DType.Int8;
        if (typeof(T) == typeof(bool)) return DType.Bool;
        if (typeof(T) == typeof(Half)) return DType.Float16;
        throw new NotSupportedException($"no tensor dtype stores {typeof(T).Name}");
    }

    /// <summary>Parses "f32", "float32", "fp16", "bf16", … as users type them.</summary>
    public static DType Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "fp32" or "float32" or "float" => DType.Float32,
        "f16" or "fp16" or "float16" or "half" => DType.Float16,
        "bf16" or "bfloat16" => DType.BFloat16,
        "f64" or "fp64" or "float64" or "double" => DType.Float64,
        "i64" or "int64" or "long" => DType.Int64,
        "i32" or "int32" or "int" => DType.Int32,
        "u8" or "uint8" => DType.UInt8,
        "bool" => DType.Bool,
        _ => throw new ArgumentException($"unknown dtype '{name}' (use f32, f16 or bf16)"),
    };
}
