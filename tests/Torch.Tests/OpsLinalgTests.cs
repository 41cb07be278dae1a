using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>matmul (2-D, batched, broadcasting, vectors), bmm, baddbmm and outer against PyTorch.</summary>
public class OpsLinalgTests
{
    public static TheoryData<string> Outputs => Reference.Outputs("linalg");

    [Theory]
    [MemberData(nameof(Outputs))]
    public void MatchesTorch(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("linalg");
        Tensor a = c.In("a"), b = c.In("b"), ba = c.In("ba"), bb = c.In("bb"), v = c.In("v");
        Tensor result = output switch
        {
            "matmul_2d" => a.MatMul(b),
            "matmul_batched" => ba.MatMul(bb),
            "matmul_broadcast" => c.In("ca").MatMul(c.In("cb")),
            "matmul_vec_mat" => v.MatMul(b),
            "matmul_mat_vec" => a.MatMul(v),
            "matmul_batched_2d" => ba.MatMul(b),
            "bmm" => ba.Bmm(bb),
            "baddbmm" => c.In("input").Baddbmm(ba, bb, beta: 0.5, alpha: 2.0),
            "baddbmm_default" => c.In("input").Baddbmm(ba, bb),
            "outer" => v.Outer(c.In("w")),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        // BLAS may block the dot products differently from PyTorch's build: a few ulps on sums of 4
        c.AssertOut(output, result, atol: 1e-5, rtol: 1e-5);
    }

    [Fact]
    public void BmmNeedsThreeDimensions()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensors.Ones([2, 3]).Bmm(Tensors.Ones([3, 2])));
        TestUtil.AssertCleanMessage(e, "bmm");
        Assert.Contains("3D", e.Message);
    }
}
