using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

/// <summary>Unary op codes of native/include/ldtorch.h (same order).</summary>
internal enum UnaryOp
{
    Neg, Abs, Sqrt, Rsqrt, Exp, Log, Sin, Cos, Tanh, Sigmoid, Floor, Round, Ceil, Relu, Silu, Sign,
    LogicalNot, IsNan, IsFinite, Reciprocal, Square, Log1p, Expm1, Erf, Trunc,
}

/// <summary>Binary op codes of native/include/ldtorch.h (same order).</summary>
internal enum BinaryOp
{
    Add, Sub, Mul, Div, Pow, Minimum, Maximum, Eq, Ne, Lt, Le, Gt, Ge, Atan2, Remainder, FloorDivide,
    LogicalAnd, LogicalOr,
}

/// <summary>Reduction op codes of native/include/ldtorch.h (same order).</summary>
internal enum ReduceOp { Sum, Mean, Amax, Amin, Prod }

// Bindings for native/src/math.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_unary")] internal static partial IntPtr Unary(UnaryOp op, IntPtr a);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_unary_")] internal static partial int Unary_(UnaryOp op, IntPtr a);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_binary")] internal static partial IntPtr Binary(BinaryOp op, IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_binary_")] internal static partial int Binary_(BinaryOp op, IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_binary_scalar")] internal static partial IntPtr BinaryScalar(BinaryOp op, IntPtr a, double b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_binary_scalar_")] internal static partial int BinaryScalar_(BinaryOp op, IntPtr a, double b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_scalar_binary")] internal static partial IntPtr ScalarBinary(BinaryOp op, double a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_add_scaled")] internal static partial IntPtr AddScaled(IntPtr a, IntPtr b, double alpha);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_add_scaled_")] internal static partial int AddScaled_(IntPtr a, IntPtr b, double alpha);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_clamp")] internal static partial IntPtr Clamp(IntPtr a, double min, double max, int hasMin, int hasMax);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_lerp")] internal static partial IntPtr Lerp(IntPtr a, IntPtr b, double weight);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_lerp_tensor")] internal static partial IntPtr LerpTensor(IntPtr a, IntPtr b, IntPtr weight);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_lerp_")] internal static partial int Lerp_(IntPtr a, IntPtr b, double weight);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_where")] internal static partial IntPtr Where(IntPtr cond, IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_masked_fill")] internal static partial IntPtr MaskedFill(IntPtr a, IntPtr mask, double value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cumprod")] internal static partial IntPtr Cumprod(IntPtr a, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cumsum")] internal static partial IntPtr Cumsum(IntPtr a, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_gelu")] internal static partial IntPtr Gelu(IntPtr a, int tanh);

    [LibraryImport(LibTorch.Name, EntryPoint = "ld_reduce")] internal static partial IntPtr Reduce(ReduceOp op, IntPtr a, long* dims, int ndims, int keepdim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_var")] internal static partial IntPtr Var(IntPtr a, long* dims, int ndims, long correction, int keepdim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_std")] internal static partial IntPtr Std(IntPtr a, long* dims, int ndims, long correction, int keepdim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_norm")] internal static partial IntPtr Norm(IntPtr a, double p, long* dims, int ndims, int keepdim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_max_dim")] internal static partial int MaxDim(IntPtr a, long dim, int keepdim, IntPtr* values, IntPtr* indices);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_min_dim")] internal static partial int MinDim(IntPtr a, long dim, int keepdim, IntPtr* values, IntPtr* indices);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_argmax")] internal static partial IntPtr Argmax(IntPtr a, long dim, int hasDim, int keepdim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_topk")] internal static partial int TopK(IntPtr a, long k, long dim, int largest, IntPtr* values, IntPtr* indices);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_sort")] internal static partial int Sort(IntPtr a, long dim, int descending, IntPtr* values, IntPtr* indices);

    [LibraryImport(LibTorch.Name, EntryPoint = "ld_matmul")] internal static partial IntPtr MatMul(IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_bmm")] internal static partial IntPtr Bmm(IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_baddbmm")] internal static partial IntPtr Baddbmm(IntPtr input, IntPtr a, IntPtr b, double beta, double alpha);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_outer")] internal static partial IntPtr Outer(IntPtr a, IntPtr b);
}
