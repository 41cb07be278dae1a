using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Failures are exceptions, never crashes: a <see cref="TorchException"/> that names the operation
/// and carries libtorch's first message line (no C++ backtrace); misuse of disposed objects is an
/// <see cref="ObjectDisposedException"/>.
/// </summary>
public class ErrorTests
{
    [Fact]
    public void MatMulOfMismatchedShapes()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensors.Ones([2, 3]).MatMul(Tensors.Ones([4, 5])));
        TestUtil.AssertCleanMessage(e, "matmul");
        Assert.Contains("cannot be multiplied (2x3 and 4x5)", e.Message);
    }

    [Fact]
    public void ReshapeToAnImpossibleShape()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensors.Ones([2, 3]).Reshape(4, 4));
        TestUtil.AssertCleanMessage(e, "reshape");
        Assert.Contains("shape '[4, 4]' is invalid for input of size 6", e.Message);
        e = Assert.Throws<TorchException>(() => Tensors.Ones([2, 3]).Reshape(-1, -1));
        TestUtil.AssertCleanMessage(e, "reshape");
    }

    [Fact]
    public void ViewOfANonContiguousTensor()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensors.Ones([2, 3]).T().View(6));
        TestUtil.AssertCleanMessage(e, "view");
        Assert.Contains("view size is not compatible", e.Message);
    }

    [Fact]
    public void CatAndStackOfMismatchedShapes()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensor.Cat([Tensors.Ones([2, 3]), Tensors.Ones([2, 4])], 0));
        TestUtil.AssertCleanMessage(e, "cat");
        Assert.Contains("Sizes of tensors must match except in dimension 0", e.Message);
        e = Assert.Throws<TorchException>(() => Tensor.Cat([Tensors.Ones([2, 3]), Tensors.Ones([2, 3, 1])], 0));
        TestUtil.AssertCleanMessage(e, "cat");
        e = Assert.Throws<TorchException>(() => Tensor.Stack([Tensors.Ones([2, 3]), Tensors.Ones([3, 2])]));
        TestUtil.AssertCleanMessage(e, "stack");
        Assert.Contains("stack expects each tensor to be equal size", e.Message);
        e = Assert.Throws<TorchException>(() => Tensor.Cat(Array.Empty<Tensor>()));
        TestUtil.AssertCleanMessage(e, "cat");
    }

    [Fact]
    public void Conv2dWithTheWrongChannelCount()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Functional.Conv2d(Tensors.Ones([1, 3, 5, 5]), Tensors.Ones([6, 4, 3, 3])));
        TestUtil.AssertCleanMessage(e, "conv2d");
        Assert.Contains("to have 4 channels, but got 3 channels instead", e.Message);
    }

    [Fact]
    public void ElementwiseOperationsNameThemselves()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensors.Ones([2, 3]);
        var b = Tensors.Ones([4]);
        var e = Assert.Throws<TorchException>(() => a + b);
        TestUtil.AssertCleanMessage(e, "add");
        Assert.Contains("must match the size of tensor b (4)", e.Message);
        e = Assert.Throws<TorchException>(() => a * b);
        TestUtil.AssertCleanMessage(e, "mul");
        e = Assert.Throws<TorchException>(() => a.Mul_(Tensors.Ones([2, 1, 3])));
        TestUtil.AssertCleanMessage(e, "mul_");
        e = Assert.Throws<TorchException>(() => a.Lt(b));
        TestUtil.AssertCleanMessage(e, "lt");
        e = Assert.Throws<TorchException>(() => Tensors.Ones([2], DType.Bool).Neg());
        TestUtil.AssertCleanMessage(e, "neg");
        Assert.Contains("Negation, the `-` operator, on a bool tensor is not supported", e.Message);
    }

    [Fact]
    public void ReductionsAndIndexingOutOfRange()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensors.Ones([2, 3]);
        var e = Assert.Throws<TorchException>(() => a.Sum(5));
        TestUtil.AssertCleanMessage(e, "sum");
        Assert.Contains("Dimension out of range", e.Message);
        e = Assert.Throws<TorchException>(() => a.Select(1, 3));
        TestUtil.AssertCleanMessage(e, "select");
        Assert.Contains("out of range", e.Message);
        e = Assert.Throws<TorchException>(() => a.IndexSelect(0, TestUtil.F32([0])));
        TestUtil.AssertCleanMessage(e, "index_select");
        e = Assert.Throws<TorchException>(() => a.Item());
        TestUtil.AssertCleanMessage(e, "item");
        Assert.Contains("6 elements cannot be converted to Scalar", e.Message);
        e = Assert.Throws<TorchException>(() => a.TopK(4, 1));
        TestUtil.AssertCleanMessage(e, "topk");
    }

    [Fact]
    public void AUsedDisposedTensorIsAnObjectDisposedException()
    {
        var a = Tensors.Ones([2, 2]);
        using var b = Tensors.Ones([2, 2]);
        a.Dispose();
        Assert.True(a.IsDisposed);
        Assert.Equal("Tensor(disposed)", a.ToString());
        Assert.Throws<ObjectDisposedException>(() => a.Shape);
        Assert.Throws<ObjectDisposedException>(() => a.Sum());
        Assert.Throws<ObjectDisposedException>(() => a + b);
        Assert.Throws<ObjectDisposedException>(() => b + a);
        Assert.Throws<ObjectDisposedException>(() => Tensor.Cat([b, a]));
        Assert.Throws<ObjectDisposedException>(() => Functional.Linear(b, a));
        Assert.Throws<ObjectDisposedException>(() => a.ToArray<float>());
        Assert.Throws<ObjectDisposedException>(() => a.Backward());
        a.Dispose(); // a second Dispose is harmless
        Assert.Equal(4.0, b.Sum().Item());
    }

    [Fact]
    public void ADisposedGeneratorIsAnObjectDisposedException()
    {
        var g = new Generator(1);
        g.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Tensors.Randn([2], g));
        Assert.Throws<ObjectDisposedException>(() => g.ManualSeed(2));
        g.Dispose();
    }

    [Fact]
    public void CopyToWithTheWrongElementTypeOrSize()
    {
        using var scope = DisposeScope.Enter();
        var t = Tensors.Ones([4]);
        // the element type is checked before libtorch is asked: an argument error that says what to do
        var dtypeError = Assert.Throws<ArgumentException>(() => t.CopyTo<double>(new double[4]));
        Assert.Contains("Float32", dtypeError.Message);
        Assert.Contains("To(DType)", dtypeError.Message);
        Assert.Throws<ArgumentException>(() => t.ToArray<int>());
        var e = Assert.Throws<TorchException>(() => t.CopyTo<float>(new float[3]));
        TestUtil.AssertCleanMessage(e, "copy_to_buffer");
        Assert.Contains("12 bytes but the tensor has 16", e.Message);
        var ok = new float[4];
        t.CopyTo<float>(ok);
        Assert.Equal([1f, 1, 1, 1], ok);
    }

    [Fact]
    public void CopyFromAnUnbroadcastableShape()
    {
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<TorchException>(() => Tensors.Zeros([2, 2]).CopyFrom(Tensors.Ones([3])));
        TestUtil.AssertCleanMessage(e, "copy_");
    }

    [Fact]
    public void FromWithTooFewOrTooManyValues()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.From(new float[5], 2, 3));
        Assert.Contains("holds 6 elements but 5 were given", e.Message);
        Assert.Throws<ArgumentException>(() => Tensor.FromBytes(new byte[3], DType.Float16, 2));
    }

    [Fact]
    public void AnUnknownDTypeOrDeviceIsReported()
    {
        var e = Assert.Throws<TorchException>(() => Tensors.Zeros([2], (DType)99));
        TestUtil.AssertCleanMessage(e, "zeros");
        Assert.Contains("unsupported dtype code 99", e.Message);
        e = Assert.Throws<TorchException>(() => Tensors.Zeros([2], device: Device.Cuda(99)));
        TestUtil.AssertCleanMessage(e, "zeros");
        e = Assert.Throws<TorchException>(() => Tensors.Zeros([2], device: new Device((DeviceType)7)));
        TestUtil.AssertCleanMessage(e, "zeros");
        Assert.Contains("unknown device type 7", e.Message);
    }

    [Fact]
    public void FunctionalErrorsNameTheirOperation()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([1, 4, 3, 3]);
        var e = Assert.Throws<TorchException>(() => Functional.GroupNorm(x, 3));
        TestUtil.AssertCleanMessage(e, "group_norm");
        e = Assert.Throws<TorchException>(() => Functional.LayerNorm(x, [5]));
        TestUtil.AssertCleanMessage(e, "layer_norm");
        e = Assert.Throws<TorchException>(() => Functional.Pad(x, [3, 3], PaddingMode.Reflect));
        TestUtil.AssertCleanMessage(e, "pad");
        e = Assert.Throws<TorchException>(() => Functional.Embedding(TestUtil.F32([1]), Tensors.Ones([4, 2])));
        TestUtil.AssertCleanMessage(e, "embedding");
        e = Assert.Throws<TorchException>(() => Functional.CrossEntropy(Tensors.Ones([2, 3]), Tensor.From(new long[] { 0, 7 })));
        TestUtil.AssertCleanMessage(e, "cross_entropy");
        e = Assert.Throws<TorchException>(() => Functional.ScaledDotProductAttention(Tensors.Ones([1, 2, 4]), Tensors.Ones([1, 3, 5]), Tensors.Ones([1, 3, 4])));
        TestUtil.AssertCleanMessage(e, "scaled_dot_product_attention");
        e = Assert.Throws<TorchException>(() => Functional.Interpolate(Tensors.Ones([2, 2]), (4, 4)));
        TestUtil.AssertCleanMessage(e, "interpolate");
    }

    [Fact]
    public void ErrorMessagesAreKeptPerThread()
    {
        // each thread's failure reports its own message, however the threads interleave
        var failures = new string[8];
        Parallel.For(0, failures.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            using var scope = DisposeScope.Enter();
            for (int round = 0; round < 20; round++)
            {
                var e = Assert.Throws<TorchException>(() => Tensors.Ones([2, i + 2]).Reshape(2 * (i + 2) + 1));
                failures[i] = e.Message;
                Assert.Contains($"input of size {2 * (i + 2)}", e.Message);
            }
        });
        Assert.Equal(failures.Length, failures.Distinct().Count());
    }

    [Fact]
    public void TheProcessKeepsWorkingAfterManyFailures()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensors.Ones([2, 3]);
        for (int i = 0; i < 100; i++)
        {
            Assert.Throws<TorchException>(() => a.MatMul(a));
            Assert.Throws<TorchException>(() => a.Reshape(5));
        }
        Assert.Equal(6.0, a.Sum().Item());
    }
}
