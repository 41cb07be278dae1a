using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>Golden check #3: the tiny SD CLIPTextModel against transformers 4.43 (float32, CPU).</summary>
public class ClipTextModelGoldenTests(ITestOutputHelper output)
{
    // goldens/text_encoder.safetensors tolerance in ../shared/golden/manifest.json.
    private const double Atol = 2e-5, Rtol = 1e-4;

    [Fact]
    public void ForwardMatchesTransformers()
    {
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        var golden = ClipTextAssert.LoadGolden();
        try
        {
            using var noGrad = Autograd.NoGrad();
            using var result = model.Forward(golden["input.input_ids"], outputHiddenStates: true);
            var last = TensorAssert.Close(result.LastHiddenState, golden["output.last_hidden_state"], Atol, Rtol, "last_hidden_state");
            var pooled = TensorAssert.Close(result.PoolerOutput, golden["output.pooler_output"], Atol, Rtol, "pooler_output");
            Assert.Equal(model.NumLayers + 1, result.HiddenStates.Count);
            var penultimate = TensorAssert.Close(result.HiddenStates[^2], golden["output.hidden_states_penultimate"], Atol, Rtol, "hidden_states[-2]");
            output.WriteLine($"max abs error: last_hidden_state {last:G3}, pooler_output {pooled:G3}, hidden_states[-2] {penultimate:G3}");
        }
        finally
        {
            ClipTextAssert.Free(golden);
        }
    }

    [Fact]
    public void ClipSkipIsThePenultimateStateThroughTheFinalLayerNorm()
    {
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        var golden = ClipTextAssert.LoadGolden();
        try
        {
            using var noGrad = Autograd.NoGrad();
            var ids = golden["input.input_ids"];
            using var skipped = model.EncodePrompt(ids, clipSkip: 1);
            using var expected = model.TextModel.FinalLayerNorm.Forward(golden["output.hidden_states_penultimate"]);
            TensorAssert.Close(skipped, expected, Atol, Rtol, "clip skip 1");
            using var plain = model.EncodePrompt(ids);
            TensorAssert.Close(plain, golden["output.last_hidden_state"], Atol, Rtol, "no clip skip");
        }
        finally
        {
            ClipTextAssert.Free(golden);
        }
    }

    [Fact]
    public void PooledOutputFollowsTheEosRule()
    {
        // transformers 4.43: eos_token_id 2 (legacy configs) pools at the largest id (argmax); any other
        // eos_token_id pools at its first occurrence. Ids [bos, 5, 933, 5, 7] tell the rules apart.
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        using var firstFive = new ClipTextModel(model.Config with { EosTokenId = 5 });
        using var legacy = new ClipTextModel(model.Config with { EosTokenId = 2 });
        firstFive.LoadStateDict(model.StateDict());
        legacy.LoadStateDict(model.StateDict());
        using var noGrad = Autograd.NoGrad();
        using var ids = Tensor.From([932L, 5, 933, 5, 7, 932, 933, 933, 5, 5], 2, 5);

        using var byEos = model.Forward(ids);       // eos 933: positions 2 and 1
        using var byFive = firstFive.Forward(ids);  // eos 5: positions 1 and 3
        using var byArgmax = legacy.Forward(ids);   // largest id 933: positions 2 and 1 (first of equal maxima)
        AssertPooledAt(byEos, [2, 1]);
        AssertPooledAt(byFive, [1, 3]);
        AssertPooledAt(byArgmax, [2, 1]);
    }

    private static void AssertPooledAt(ClipTextOutput output, long[] positions)
    {
        for (int row = 0; row < positions.Length; row++)
        {
            using var pooled = output.PoolerOutput.Select(0, row);
            using var hidden = output.LastHiddenState.Select(0, row).Select(0, positions[row]);
            Assert.True(pooled.Equal(hidden), $"row {row} is not pooled at position {positions[row]}");
        }
    }

    [Fact]
    public void CausalMaskHidesOnlyLaterTokens()
    {
        // Changing a later token must not change earlier positions (causal), and must change later ones.
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        using var noGrad = Autograd.NoGrad();
        using var a = Tensor.From([932L, 10, 20, 30, 933], 1, 5);
        using var b = Tensor.From([932L, 10, 20, 31, 933], 1, 5);
        using var ea = model.EncodePrompt(a);
        using var eb = model.EncodePrompt(b);
        using var earlyA = ea.Slice(1, 0, 3);
        using var earlyB = eb.Slice(1, 0, 3);
        Assert.True(earlyA.Equal(earlyB));
        using var lateA = ea.Slice(1, 3, 5);
        using var lateB = eb.Slice(1, 3, 5);
        Assert.False(lateA.Equal(lateB));
    }
}
