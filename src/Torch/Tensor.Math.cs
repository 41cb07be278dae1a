using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

// Elementwise math, reductions and linear algebra (native/src/math.cpp).
public sealed partial class Tensor
{
    // Operation names for error messages, computed once rather than on every call.
    private static readonly string[] UnaryNames = Enum.GetNames<UnaryOp>().Select(n => n.ToLowerInvariant()).ToArray();
    private static readonly string[] BinaryNames = Enum.GetNames<BinaryOp>().Select(n => n.ToLowerInvariant()).ToArray();
    private static readonly string[] ReduceNames = Enum.GetNames<ReduceOp>().Select(n => n.ToLowerInvariant()).ToArray();

    private Tensor Unary(UnaryOp op) => new(NativeMethods.Unary(op, Handle), UnaryNames[(int)op]);
    private Tensor Unary_(UnaryOp op)
    {
        Check(NativeMethods.Unary_(op, Handle), UnaryNames[(int)op] + "_");
        return this;
    }
    private static Tensor Binary(BinaryOp op, Tensor a, Tensor b) => new(NativeMethods.Binary(op, a.Handle, b.Handle), BinaryNames[(int)op]);
    private static Tensor Binary(BinaryOp op, Tensor a, double b) => new(NativeMethods.BinaryScalar(op, a.Handle, b), BinaryNames[(int)op]);
    private static Tensor Binary(BinaryOp op, double a, Tensor b) => new(NativeMethods.ScalarBinary(op, a, b.Handle), BinaryNames[(int)op]);

    public static Tensor operator +(Tensor a, Tensor b) => Binary(BinaryOp.Add, a, b);
    public static Tensor operator +(Tensor a, double b) => Binary(BinaryOp.Add, a, b);
    public static Tensor operator +(double a, Tensor b) => Binary(BinaryOp.Add, a, b);
    public static Tensor operator -(Tensor a, Tensor b) => Binary(BinaryOp.Sub, a, b);
    public static Tensor operator -(Tensor a, double b) => Binary(BinaryOp.Sub, a, b);
    public static Tensor operator -(double a, Tensor b) => Binary(BinaryOp.Sub, a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Binary(BinaryOp.Mul, a, b);
    public static Tensor operator *(Tensor a, double b) => Binary(BinaryOp.Mul, a, b);
    public static Tensor operator *(double a, Tensor b) => Binary(BinaryOp.Mul, a, b);
    public static Tensor operator /(Tensor a, Tensor b) => Binary(BinaryOp.Div, a, b);
    public static Tensor operator /(Tensor a, double b) => Binary(BinaryOp.Div, a, b);
    public static Tensor operator /(double a, Tensor b) => Binary(BinaryOp.Div, a, b);
    public static Tensor operator -(Tensor a) => a.Neg();

    /// <summary>this + alpha × other (torch.add with alpha).</summary>
    public Tensor Add(Tensor other, double alpha = 1) => new(NativeMethods.AddScaled(Handle, other.Handle, alpha), "add");

    public Tensor Add_(Tensor other, double alpha = 1)
    {
        Check(NativeMethods.AddScaled_(Handle, other.Handle, alpha), "add_");
        return this;
    }
    public Tensor Add_(double value) { Check(NativeMethods.BinaryScalar_(BinaryOp.Add, Handle, value), "add_"); return this; }
    public Tensor Sub_(Tensor other) { Check(NativeMethods.Binary_(BinaryOp.Sub, Handle, other.Handle), "sub_"); return this; }
    public Tensor Mul_(Tensor other) { Check(NativeMethods.Binary_(BinaryOp.Mul, Handle, other.Handle), "mul_"); return this; }
    public Tensor Mul_(double value) { Check(NativeMethods.BinaryScalar_(BinaryOp.Mul, Handle, value), "mul_"); return this; }
    public Tensor Div_(Tensor other) { Check(NativeMethods.Binary_(BinaryOp.Div, Handle, other.Handle), "div_"); return this; }
    public Tensor Div_(double value) { Check(NativeMethods.BinaryScalar_(BinaryOp.Div, Handle, value), "div_"); return this; }

    public Tensor Pow(Tensor exponent) => Binary(BinaryOp.Pow, this, exponent);
    public Tensor Pow(double exponent) => Binary(BinaryOp.Pow, this, exponent);
    public static Tensor Pow(double @base, Tensor exponent) => Binary(BinaryOp.Pow, @base, exponent);
    public Tensor Minimum(Tensor other) => Binary(BinaryOp.Minimum, this, other);
    public Tensor Maximum(Tensor other) => Binary(BinaryOp.Maximum, this, other);
    public Tensor Atan2(Tensor other) => Binary(BinaryOp.Atan2, this, other);
    public Tensor Remainder(double other) => Binary(BinaryOp.Remainder, this, other);
    public Tensor FloorDivide(double other) => Binary(BinaryOp.FloorDivide, this, other);

    public Tensor Eq(Tensor other) => Binary(BinaryOp.Eq, this, other);
    public Tensor Eq(double other) => Binary(BinaryOp.Eq, this, other);
    public Tensor Ne(Tensor other) => Binary(BinaryOp.Ne, this, other);
    public Tensor Ne(double other) => Binary(BinaryOp.Ne, this, other);
    public Tensor Lt(Tensor other) => Binary(BinaryOp.Lt, this, other);
    public Tensor Lt(double other) => Binary(BinaryOp.Lt, this, other);
    public Tensor Le(Tensor other) => Binary(BinaryOp.Le, this, other);
    public Tensor Le(double other) => Binary(BinaryOp.Le, this, other);
    public Tensor Gt(Tensor other) => Binary(BinaryOp.Gt, this, other);
    public Tensor Gt(double other) => Binary(BinaryOp.Gt, this, other);
    public Tensor Ge(Tensor other) => Binary(BinaryOp.Ge, this, other);
    public Tensor Ge(double other) => Binary(BinaryOp.Ge, this, other);
    public Tensor LogicalAnd(Tensor other) => Binary(BinaryOp.LogicalAnd, this, other);
    public Tensor LogicalOr(Tensor other) => Binary(BinaryOp.LogicalOr, this, other);
    public Tensor LogicalNot() => Unary(UnaryOp.LogicalNot);

    public Tensor Neg() => Unary(UnaryOp.Neg);
    public Tensor Abs() => Unary(UnaryOp.Abs);
    public Tensor Sqrt() => Unary(UnaryOp.Sqrt);
    public Tensor Rsqrt() => Unary(UnaryOp.Rsqrt);
    public Tensor Exp() => Unary(UnaryOp.Exp);
    public Tensor Log() => Unary(UnaryOp.Log);
    public Tensor Log1p() => Unary(UnaryOp.Log1p);
    public Tensor Expm1() => Unary(UnaryOp.Expm1);
    public Tensor Sin() => Unary(UnaryOp.Sin);
    public Tensor Cos() => Unary(UnaryOp.Cos);
    public Tensor Tanh() => Unary(UnaryOp.Tanh);
    public Tensor Sigmoid() => Unary(UnaryOp.Sigmoid);
    public Tensor Floor() => Unary(UnaryOp.Floor);
    public Tensor Round() => Unary(UnaryOp.Round);
    public Tensor Ceil() => Unary(UnaryOp.Ceil);
    public Tensor Trunc() => Unary(UnaryOp.Trunc);
    public Tensor Sign() => Unary(UnaryOp.Sign);
    public Tensor Reciprocal() => Unary(UnaryOp.Reciprocal);
    public Tensor Square() => Unary(UnaryOp.Square);
    public Tensor Erf() => Unary(UnaryOp.Erf);
    public Tensor IsNan() => Unary(UnaryOp.IsNan);
    public Tensor IsFinite() => Unary(UnaryOp.IsFinite);
    public Tensor Relu() => Unary(UnaryOp.Relu);
    public Tensor Silu() => Unary(UnaryOp.Silu);
    public Tensor Neg_() => Unary_(UnaryOp.Neg);
    public Tensor Sqrt_() => Unary_(UnaryOp.Sqrt);
    public Tensor Exp_() => Unary_(UnaryOp.Exp);
    public Tensor Relu_() => Unary_(UnaryOp.Relu);
    public Tensor Silu_() => Unary_(UnaryOp.Silu);

    public Tensor Clamp(double? min = null, double? max = null) =>
        new(NativeMethods.Clamp(Handle, min ?? 0, max ?? 0, min.HasValue ? 1 : 0, max.HasValue ? 1 : 0), "clamp");

    /// <summary>this + weight × (end − this).</summary>
    public Tensor Lerp(Tensor end, double weight) => new(NativeMethods.Lerp(Handle, end.Handle, weight), "lerp");
    public Tensor Lerp(Tensor end, Tensor weight) => new(NativeMethods.LerpTensor(Handle, end.Handle, weight.Handle), "lerp");
    public Tensor Lerp_(Tensor end, double weight)
    {
        Check(NativeMethods.Lerp_(Handle, end.Handle, weight), "lerp_");
        return this;
    }

    public Tensor MaskedFill(Tensor mask, double value) => new(NativeMethods.MaskedFill(Handle, mask.Handle, value), "masked_fill");
    public Tensor CumProd(long dim) => new(NativeMethods.Cumprod(Handle, dim), "cumprod");
    public Tensor CumSum(long dim) => new(NativeMethods.Cumsum(Handle, dim), "cumsum");

    // ---- reductions ----

    private unsafe Tensor Reduce(ReduceOp op, ReadOnlySpan<long> dims, bool keepDim)
    {
        fixed (long* d = dims)
            return new(NativeMethods.Reduce(op, Handle, d, dims.Length, keepDim ? 1 : 0), ReduceNames[(int)op]);
    }

    public Tensor Sum() => Reduce(ReduceOp.Sum, default, false);
    public Tensor Sum(long dim, bool keepDim = false) => Reduce(ReduceOp.Sum, [dim], keepDim);
    public Tensor Sum(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Sum, dims, keepDim);
    public Tensor Mean() => Reduce(ReduceOp.Mean, default, false);
    public Tensor Mean(long dim, bool keepDim = false) => Reduce(ReduceOp.Mean, [dim], keepDim);
    public Tensor Mean(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Mean, dims, keepDim);
    public Tensor Max() => Reduce(ReduceOp.Amax, default, false);
    public Tensor Amax(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Amax, dims, keepDim);
    public Tensor Min() => Reduce(ReduceOp.Amin, default, false);
    public Tensor Amin(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Amin, dims, keepDim);
    public Tensor Prod() => Reduce(ReduceOp.Prod, default, false);
    public Tensor Prod(long dim, bool keepDim = false) => Reduce(ReduceOp.Prod, [dim], keepDim);

    /// <summary>Variance; correction 1 is the unbiased estimate (PyTorch's default).</summary>
    public unsafe Tensor Var(long[]? dims = null, long correction = 1, bool keepDim = false)
    {
        fixed (long* d = dims) return new(NativeMethods.Var(Handle, d, dims?.Length ?? 0, correction, keepDim ? 1 : 0), "var");
    }

    public unsafe Tensor Std(long[]? dims = null, long correction = 1, bool keepDim = false)
    {
        fixed (long* d = dims) return new(NativeMethods.Std(Handle, d, dims?.Length ?? 0, correction, keepDim ? 1 : 0), "std");
    }

    public unsafe Tensor Norm(double p = 2, long[]? dims = null, bool keepDim = false)
    {
        fixed (long* d = dims) return new(NativeMethods.Norm(Handle, p, d, dims?.Length ?? 0, keepDim ? 1 : 0), "norm");
    }

    public unsafe (Tensor Values, Tensor Indices) Max(long dim, bool keepDim = false)
    {
        IntPtr v, i;
        Check(NativeMethods.MaxDim(Handle, dim, keepDim ? 1 : 0, &v, &i), "max");
        return (new Tensor(v), new Tensor(i));
    }

    public unsafe (Tensor Values, Tensor Indices) Min(long dim, bool keepDim = false)
    {
        IntPtr v, i;
        Check(NativeMethods.MinDim(Handle, dim, keepDim ? 1 : 0, &v, &i), "min");
        return (new Tensor(v), new Tensor(i));
    }

    public Tensor ArgMax() => new(NativeMethods.Argmax(Handle, 0, 0, 0), "argmax");
    public Tensor ArgMax(long dim, bool keepDim = false) => new(NativeMethods.Argmax(Handle, dim, 1, keepDim ? 1 : 0), "argmax");

    public unsafe (Tensor Values, Tensor Indices) TopK(long k, long dim = -1, bool largest = true)
    {
        IntPtr v, i;
        Check(NativeMethods.TopK(Handle, k, dim, largest ? 1 : 0, &v, &i), "topk");
        return (new Tensor(v), new Tensor(i));
    }

    public unsafe (Tensor Values, Tensor Indices) Sort(long dim = -1, bool descending = false)
    {
        IntPtr v, i;
        Check(NativeMethods.Sort(Handle, dim, descending ? 1 : 0, &v, &i), "sort");
        return (new Tensor(v), new Tensor(i));
    }

    // ---- linear algebra ----

    public Tensor MatMul(Tensor other) => new(NativeMethods.MatMul(Handle, other.Handle), "matmul");
    public Tensor Bmm(Tensor other) => new(NativeMethods.Bmm(Handle, other.Handle), "bmm");

    /// <summary>beta × this + alpha × (batch1 @ batch2).</summary>
    public Tensor Baddbmm(Tensor batch1, Tensor batch2, double beta = 1, double alpha = 1) =>
        new(NativeMethods.Baddbmm(Handle, batch1.Handle, batch2.Handle, beta, alpha), "baddbmm");

    public Tensor Outer(Tensor other) => new(NativeMethods.Outer(Handle, other.Handle), "outer");
}
