using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Reductions over dimensions (with and without keepdim), topk and sort, against PyTorch.</summary>
public class OpsReductionTests
{
    public static TheoryData<string> ReduceOutputs => Reference.Outputs("reduce");

    [Theory]
    [MemberData(nameof(ReduceOutputs))]
    public void ReductionMatchesTorch(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("reduce");
        var x = c.In("x");
        bool keep = output.EndsWith("_keep", StringComparison.Ordinal);
        var name = keep ? output[..^"_keep".Length] : output;
        Tensor result = name switch
        {
            "sum_d1" => x.Sum(1, keep),
            "sum_d02" => x.Sum([0, 2], keep),
            "mean_dm1" => x.Mean(-1, keep),
            "mean_d01" => x.Mean([0, 1], keep),
            "amax_d12" => x.Amax([1, 2], keep),
            "amin_d0" => x.Amin([0], keep),
            "prod_d2" => x.Prod(2, keep),
            "argmax_d1" => x.ArgMax(1, keep),
            "var_d2_c0" => x.Var([2], 0, keep),
            "var_d2_c1" => x.Var([2], 1, keep),
            "std_d01_c0" => x.Std([0, 1], 0, keep),
            "std_d01_c1" => x.Std([0, 1], 1, keep),
            "norm_p1_d1" => x.Norm(1, [1], keep),
            "norm_p2_d1" => x.Norm(2, [1], keep),
            "max_d1_values" => x.Max(1, keep).Values,
            "max_d1_indices" => x.Max(1, keep).Indices,
            "min_dm1_values" => x.Min(-1, keep).Values,
            "min_dm1_indices" => x.Min(-1, keep).Indices,
            "sum_all" => x.Sum(),
            "mean_all" => x.Mean(),
            "max_all" => x.Max(),
            "min_all" => x.Min(),
            "prod_all" => c.In("x00p1").Prod(),
            "argmax_all" => x.ArgMax(),
            "var_all_c1" => x.Var(),
            "var_all_c0" => x.Var(correction: 0),
            "std_all_c1" => x.Std(),
            "norm_p2_all" => x.Norm(),
            "norm_p1_all" => x.Norm(1),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        // sums over up to 60 float32 values: summation order may differ from PyTorch's, so allow
        // a few ulps more than the default (products of 5 values near 1e-3 likewise)
        c.AssertOut(output, result, atol: 2e-5, rtol: 2e-5);
    }

    [Fact]
    public void ReductionsOverAllDimensionsWithKeepDimKeepEveryAxis()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("reduce");
        var x = c.In("x");
        var expected = c.Output("sum_all").Data[0];
        var s = x.Sum([0, 1, 2], keepDim: true);
        TensorAssert.Close(s, [expected], [1, 1, 1], 2e-5, 2e-5);
        TensorAssert.Close(x.Mean([0, 1, 2], keepDim: true), [c.Output("mean_all").Data[0]], [1, 1, 1]);
        // an empty dimension list means every dimension, keepdim included
        TensorAssert.Close(x.Sum([], keepDim: true), [expected], [1, 1, 1], 2e-5, 2e-5);
        TensorAssert.Close(x.Amax([], keepDim: true), c.Output("max_all").Data, [1, 1, 1], 0, 0);
        TensorAssert.Close(x.Amin([], keepDim: true), c.Output("min_all").Data, [1, 1, 1], 0, 0);
        TensorAssert.Close(x.Var(keepDim: true), c.Output("var_all_c1").Data, [1, 1, 1], 2e-5, 2e-5);
        TensorAssert.Close(x.Std(keepDim: true), c.Output("std_all_c1").Data, [1, 1, 1], 2e-5, 2e-5);
        TensorAssert.Close(x.Norm(2, keepDim: true), c.Output("norm_p2_all").Data, [1, 1, 1], 2e-5, 2e-5);
        TensorAssert.Close(x.Norm(1, keepDim: true), c.Output("norm_p1_all").Data, [1, 1, 1], 2e-5, 2e-5);
    }

    [Fact]
    public void TopKAndSort()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("topk_sort");
        var x = c.In("x");
        var (v, i) = x.TopK(3);
        c.AssertExact("topk3_values", v);
        c.AssertExact("topk3_indices", i);
        (v, i) = x.TopK(2, 1, largest: false);
        c.AssertExact("bottom2_values", v);
        c.AssertExact("bottom2_indices", i);
        (v, i) = x.TopK(1, 0);
        c.AssertExact("topk1_d0_values", v);
        c.AssertExact("topk1_d0_indices", i);
        (v, i) = x.Sort();
        c.AssertExact("sort_values", v);
        c.AssertExact("sort_indices", i);
        (v, i) = x.Sort(0, descending: true);
        c.AssertExact("sort_desc_d0_values", v);
        c.AssertExact("sort_desc_d0_indices", i);
    }
}
