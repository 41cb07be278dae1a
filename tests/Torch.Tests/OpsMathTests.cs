using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Elementwise math against PyTorch (float32, atol 1e-5 / rtol 1e-5 unless said otherwise).</summary>
public class OpsMathTests
{
    public static TheoryData<string> BinaryOutputs => Reference.Outputs("binary");

    [Theory]
    [MemberData(nameof(BinaryOutputs))]
    public void ArithmeticWithBroadcastingAndScalarsOnBothSides(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("binary");
        Tensor a = c.In("a"), full = c.In("b_full"), row = c.In("b_row"), col = c.In("b_col"), nz = c.In("nz");
        Tensor result = output switch
        {
            "add_full" => a + full,
            "add_row" => a + row,
            "add_col" => a + col,
            "sub_full" => a - full,
            "sub_row" => a - row,
            "sub_col" => a - col,
            "mul_full" => a * full,
            "mul_row" => a * row,
            "mul_col" => a * col,
            "div_full" => a / nz,
            "div_row" => row / nz,
            "div_col" => col / nz,
            "add_scalar" => a + 2.5,
            "radd_scalar" => 2.5 + a,
            "sub_scalar" => a - 2.5,
            "rsub_scalar" => 2.5 - a,
            "mul_scalar" => a * -1.75,
            "rmul_scalar" => -1.75 * a,
            "div_scalar" => a / 2.5,
            "rdiv_scalar" => 2.5 / nz,
            "add_alpha" => a.Add(full, alpha: -0.5),
            "minimum" => a.Minimum(row),
            "maximum" => a.Maximum(col),
            "atan2" => a.Atan2(full),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    [Fact]
    public void InPlaceArithmeticMatchesTheOutOfPlaceResults()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("binary");
        Tensor a = c.In("a");
        c.AssertOut("add_full", a.Clone().Add_(c.In("b_full")));
        c.AssertOut("add_alpha", a.Clone().Add_(c.In("b_full"), -0.5));
        c.AssertOut("add_scalar", a.Clone().Add_(2.5));
        c.AssertOut("sub_row", a.Clone().Sub_(c.In("b_row")));
        c.AssertOut("mul_col", a.Clone().Mul_(c.In("b_col")));
        c.AssertOut("mul_scalar", a.Clone().Mul_(-1.75));
        c.AssertOut("div_full", a.Clone().Div_(c.In("nz")));
        c.AssertOut("div_scalar", a.Clone().Div_(2.5));
        var t = a.Clone();
        Assert.Same(t, t.Neg_());
        TensorAssert.Close(t, TensorAssert.Values(-a), a.Shape, 0, 0);
    }

    public static TheoryData<string> PowOutputs => Reference.Outputs("pow");

    [Theory]
    [MemberData(nameof(PowOutputs))]
    public void PowWithTensorScalarAndScalarBase(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("pow");
        Tensor p = c.In("p"), e = c.In("e"), a = c.In("a");
        Tensor result = output switch
        {
            "pow_tensor" => p.Pow(e),
            "pow_square" => a.Pow(2.0),
            "pow_half" => p.Pow(0.5),
            "pow_cube" => a.Pow(3.0),
            "pow_neg" => p.Pow(-1.5),
            "scalar_base" => Tensor.Pow(2.0, a),
            "scalar_base_e" => Tensor.Pow(Math.E, e),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    public static TheoryData<string> UnaryOutputs => Reference.Outputs("unary");

    [Theory]
    [MemberData(nameof(UnaryOutputs))]
    public void UnaryFunctions(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("unary");
        Tensor u = c.In("u"), q = c.In("q");
        Tensor result = output switch
        {
            "sqrt" => q.Sqrt(),
            "rsqrt" => q.Rsqrt(),
            "exp" => u.Exp(),
            "log" => q.Log(),
            "abs" => u.Abs(),
            "neg" => -u,
            "sin" => u.Sin(),
            "cos" => u.Cos(),
            "tanh" => u.Tanh(),
            "sigmoid" => u.Sigmoid(),
            "floor" => u.Floor(),
            "ceil" => u.Ceil(),
            "trunc" => u.Trunc(),
            "sign" => u.Sign(),
            "reciprocal" => q.Reciprocal(),
            "square" => u.Square(),
            "log1p" => q.Log1p(),
            "expm1" => u.Expm1(),
            "erf" => u.Erf(),
            "relu" => u.Relu(),
            "silu" => u.Silu(),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    [Fact]
    public void InPlaceUnaryFunctionsMatch()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("unary");
        c.AssertOut("sqrt", c.In("q").Sqrt_());
        c.AssertOut("exp", c.In("u").Exp_());
        c.AssertOut("relu", c.In("u").Relu_());
        c.AssertOut("silu", c.In("u").Silu_());
    }

    [Fact]
    public void RoundIsHalfToEvenLikeTorchAndFloorRoundsDown()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("round_half_even");
        var x = c.In("x");
        c.AssertExact("round", x.Round());
        c.AssertExact("floor", x.Floor());
        TensorAssert.Exact(TestUtil.F32([0.5f, 1.5f, 2.5f, -0.5f]).Round(), [0, 2, 2, -0], [4]);
    }

    [Fact]
    public void ClampWithMinOnlyMaxOnlyAndBoth()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("clamp");
        var x = c.In("x");
        c.AssertExact("min_only", x.Clamp(min: -0.5));
        c.AssertExact("max_only", x.Clamp(max: 0.75));
        c.AssertExact("both", x.Clamp(c.Double("lo"), c.Double("hi")));
        // no bound at all is torch's error "At least one of 'min' or 'max' must not be None"
        var e = Assert.Throws<TorchException>(() => x.Clamp());
        Assert.Equal("clamp", e.Operation);
    }

    [Fact]
    public void LerpWithScalarAndTensorWeights()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("lerp");
        Tensor a = c.In("a"), b = c.In("b");
        c.AssertOut("scalar", a.Lerp(b, 0.3));
        c.AssertOut("scalar_big", a.Lerp(b, 0.7));
        c.AssertOut("tensor", a.Lerp(b, c.In("w")));
        c.AssertOut("scalar", a.Clone().Lerp_(b, 0.3));
    }

    [Fact]
    public void CumsumAndCumprod()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("cumulative");
        var x = c.In("x");
        c.AssertOut("cumsum0", x.CumSum(0));
        c.AssertOut("cumsum1", x.CumSum(1));
        c.AssertOut("cumprod0", x.CumProd(0));
        c.AssertOut("cumprod1", x.CumProd(-1));
        // the scheduler's alphas_cumprod over 50 betas
        c = Reference.Case("cumprod_alphas");
        c.AssertOut("out", (1.0 - c.In("betas")).CumProd(0));
    }

    [Fact]
    public void ComparisonsAndLogicalOperationsGiveBooleans()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("compare");
        Tensor a = c.In("a"), b = c.In("b");
        c.AssertExact("eq", a.Eq(b));
        c.AssertExact("ne", a.Ne(b));
        c.AssertExact("lt", a.Lt(b));
        c.AssertExact("le", a.Le(b));
        c.AssertExact("gt", a.Gt(b));
        c.AssertExact("ge", a.Ge(b));
        c.AssertExact("eq_s", a.Eq(3.0));
        c.AssertExact("ne_s", a.Ne(3.0));
        c.AssertExact("lt_s", a.Lt(2.0));
        c.AssertExact("le_s", a.Le(2.0));
        c.AssertExact("gt_s", a.Gt(2.0));
        c.AssertExact("ge_s", a.Ge(2.0));
        c.AssertExact("and", a.Gt(1.0).LogicalAnd(a.Lt(3.0)));
        c.AssertExact("or", a.Lt(2.0).LogicalOr(a.Gt(2.0)));
        c.AssertExact("not", a.Gt(1.0).LogicalNot());
    }

    [Fact]
    public void RemainderAndFloorDivideFollowPythonSigns()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("remainder");
        var x = c.In("x");
        c.AssertExact("remainder", x.Remainder(2.0));
        c.AssertExact("floor_divide", x.FloorDivide(2.0));
    }

    [Fact]
    public void NanAndInfinityPredicates()
    {
        using var scope = DisposeScope.Enter();
        var x = TestUtil.F32([1, float.NaN, float.PositiveInfinity, -2]);
        TensorAssert.Exact(x.IsNan(), [0, 1, 0, 0], [4]);
        TensorAssert.Exact(x.IsFinite(), [1, 0, 0, 1], [4]);
        Assert.Equal(DType.Bool, x.IsNan().DType);
    }
}

public class IntegerScalarTests
{
    [Fact]
    public void WholeScalarsKeepIntegerTensorsIntegral()
    {
        using var counter = Tensors.Zeros([1], DType.Int64);
        counter.Add_(1).Add_(2);
        Assert.Equal(DType.Int64, counter.DType);
        Assert.Equal(3L, counter.ItemInt64());
        using var doubled = counter * 2;
        Assert.Equal(DType.Int64, doubled.DType);
        using var half = counter * 0.5;
        Assert.Equal(DType.Float32, half.DType);
        Assert.Equal(1.5, half.Item());
    }
}
