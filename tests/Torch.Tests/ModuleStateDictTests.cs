using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

public class ModuleStateDictTests
{
    /// <summary>Copies of a fresh Tiny's state dict (so the caller owns them), with different random values.</summary>
    private static Dictionary<string, Tensor> FreshState()
    {
        using var other = new Tiny();
        return other.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Detach().Clone());
    }

    private static void Free(Dictionary<string, Tensor> state)
    {
        foreach (var t in state.Values) t.Dispose();
    }

    [Fact]
    public void ExactStateDictLoadsEveryValue()
    {
        using var m = new Tiny();
        var state = FreshState();
        try
        {
            var result = m.LoadStateDict(state);
            Assert.True(result.IsExactMatch);
            foreach (var (name, t) in m.StateDict()) Assert.True(t.Equal(state[name]), name);
            Assert.True(m.conv_in.Weight.RequiresGrad);
            Assert.True(m.conv_in.Weight.IsLeaf);
        }
        finally { Free(state); }
    }

    [Fact]
    public void StrictLoadNamesMissingUnexpectedAndMismatchedKeysAndChangesNothing()
    {
        using var m = new Tiny();
        var before = m.conv_in.Weight.ToArray<float>();
        var state = FreshState();
        try
        {
            state.Remove("up.bias", out var removed);
            removed!.Dispose();
            state["extra.weight"] = Tensors.Zeros([1]);
            state["norm_out.weight"].Dispose();
            state["norm_out.weight"] = Tensors.Ones([5]);

            var e = Assert.Throws<StateDictException>(() => m.LoadStateDict(state));
            Assert.Contains("up.bias", e.Message);
            Assert.Contains("extra.weight", e.Message);
            Assert.Contains("norm_out.weight (expected [4], got [5])", e.Message);
            Assert.Equal(["up.bias"], e.Result.Missing);
            Assert.Equal(["extra.weight"], e.Result.Unexpected);
            Assert.Equal("norm_out.weight", Assert.Single(e.Result.ShapeMismatches).Name);
            Assert.Equal(before, m.conv_in.Weight.ToArray<float>());
        }
        finally { Free(state); }
    }

    [Fact]
    public void NonStrictLoadReportsMissingAndUnexpectedKeysAndLoadsTheRest()
    {
        using var m = new Tiny();
        var upBias = m.up.Bias!.ToArray<float>();
        var state = FreshState();
        try
        {
            state.Remove("up.bias", out var removed);
            removed!.Dispose();
            state["extra.weight"] = Tensors.Zeros([1]);

            var result = m.LoadStateDict(state, strict: false);

            Assert.Equal(["up.bias"], result.Missing);
            Assert.Equal(["extra.weight"], result.Unexpected);
            Assert.Empty(result.ShapeMismatches);
            Assert.False(result.IsExactMatch);
            Assert.True(m.conv_in.Weight.Equal(state["conv_in.weight"]));
            Assert.Equal(upBias, m.up.Bias.ToArray<float>());
        }
        finally { Free(state); }
    }

    [Fact]
    public void ShapeMismatchThrowsEvenWhenNotStrict()
    {
        using var m = new Tiny();
        var state = FreshState();
        try
        {
            state["embed.weight"].Dispose();
            state["embed.weight"] = Tensors.Zeros([11, 8]);
            var e = Assert.Throws<StateDictException>(() => m.LoadStateDict(state, strict: false));
            Assert.Contains("embed.weight (expected [10, 8], got [11, 8])", e.Message);
            Assert.Empty(e.Result.Missing);
        }
        finally { Free(state); }
    }

    [Fact]
    public void ErrorMessageListsEveryName()
    {
        using var m = new Tiny();
        var e = Assert.Throws<StateDictException>(() => m.LoadStateDict(new Dictionary<string, Tensor>()));
        Assert.Equal(49, e.Result.Missing.Count);
        Assert.Contains("49 missing keys: pos, position_ids, conv_in.weight", e.Message);
        foreach (var name in e.Result.Missing) Assert.Contains(name, e.Message);
    }

    [Fact]
    public void AnUpgradeHookRenamesAndDropsOldKeysBeforeMatching()
    {
        using var m = new Renaming();
        using var old = Tensors.Ones([2]);
        using var extra = Tensors.Zeros([1]);
        var result = m.LoadStateDict(new Dictionary<string, Tensor> { ["inner.old_weight"] = old, ["inner.legacy_buffer"] = extra });
        Assert.True(result.IsExactMatch);
        Assert.Equal([1f, 1f], m.Inner.Weight.ToArray<float>());
        Assert.False(old.IsDisposed);
    }

    private sealed class Renaming : Module
    {
        public Upgrading Inner { get; }
        public Renaming() => Inner = RegisterModule("inner", new Upgrading());
    }

    private sealed class Upgrading : Module
    {
        public Tensor Weight { get; }
        public Upgrading() => Weight = RegisterParameter("weight", Tensors.Zeros([2]))!;

        protected override void UpgradeStateDict(string prefix, IDictionary<string, Tensor> stateDict)
        {
            if (stateDict.Remove(prefix + "old_weight", out var w)) stateDict[prefix + "weight"] = w;
            stateDict.Remove(prefix + "legacy_buffer");
        }
    }

    [Fact]
    public void Float16ValuesLoadIntoFloat32Parameters()
    {
        using var layer = new Linear(4, 3);
        using var w = Tensors.Randn([3, 4], new Generator(3), DType.Float16);
        using var b = Tensors.Randn([3], new Generator(4), DType.Float16);
        layer.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = w, ["bias"] = b });
        Assert.Equal(DType.Float32, layer.Weight.DType);
        using var expected = w.To(DType.Float32);
        Assert.True(layer.Weight.Equal(expected));
        Assert.Equal(b.ToArray<Half>().Select(h => (float)h), layer.Bias!.ToArray<float>());
    }

    [Fact]
    public void StateDictRoundTripsThroughAModuleOfTheSameShape()
    {
        using var a = new Tiny();
        using var b = new Tiny();
        b.LoadStateDict(a.StateDict());
        using var x = Tensors.Randn([2, 3, 4, 4], new Generator(5));
        using var ya = a.conv_in.Forward(x);
        using var yb = b.conv_in.Forward(x);
        Assert.True(ya.Equal(yb));
        Assert.NotSame(a.conv_in.Weight, b.conv_in.Weight);
    }
}
