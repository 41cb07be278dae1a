using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>
/// Clip skip on a text encoder graph written by someone else (optimum's outputs: last_hidden_state and hidden_states.N): the
/// earlier hidden state through the final layer norm, whose weights are read from the file (inline or external data).
/// </summary>
public sealed class ThirdPartyClipSkipTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ld-onnx-clipskip-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>
    /// A one-layer "text encoder": hidden_states.0 = embedding[ids] (width 256), hidden_states.1 = its square, last_hidden_state =
    /// LayerNorm(hidden_states.1) with the given initializer names (1 KiB each: external data when asked).
    /// </summary>
    private string Encoder(string normName, bool externalData, Tensor embedding, Tensor weight, Tensor bias)
    {
        using var g = new OnnxGraph("text_encoder");
        var ids = g.Input("input_ids", DType.Int32, "batch", "sequence");
        var h0 = g.Op("Gather", [g.Initializer("text_model.embeddings.token_embedding.weight", embedding), ids], ("axis", 0L));
        var h1 = g.Op("Mul", [h0, h0]);
        var last = g.Op("LayerNormalization", [h1, g.Initializer(normName + ".weight", weight), g.Initializer(normName + ".bias", bias)], ("axis", -1L), ("epsilon", 1e-5));
        g.Output(last, "last_hidden_state", DType.Float32, "batch", "sequence", 256L);
        g.Output(h0, "hidden_states.0", DType.Float32, "batch", "sequence", 256L);
        g.Output(h1, "hidden_states.1", DType.Float32, "batch", "sequence", 256L);
        var path = Path.Combine(folder, $"{normName}-{externalData}.onnx");
        g.Save(path, 17, externalData, $"{normName}-{externalData}.pb");
        return path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ClipSkipTwoIsTheFirstHiddenStateThroughTheFinalLayerNormReadFromTheFile(bool externalData)
    {
        using var scope = DisposeScope.Enter();
        var generator = new Generator(5);
        var (embedding, weight, bias) = (Tensors.Randn([10, 256], generator), Tensors.Randn([256], generator), Tensors.Randn([256], generator));
        var path = Encoder("text_model.final_layer_norm", externalData, embedding, weight, bias);
        Assert.Equal(externalData, File.Exists(Path.ChangeExtension(path, ".pb")));
        using var encoder = OnnxTextEncoder.Open(path, null, OnnxFixture.Engine);
        Assert.Equal(1, encoder.NumLayers); // from hidden_states.0 … hidden_states.1: no config.json needed
        var ids = Tensor.From(new long[] { 1, 4, 9, 2, 3, 0 }, 2, 3);
        var expected = Functional.LayerNorm(Functional.Embedding(ids, embedding), [256], weight, bias, 1e-5);
        var skipped = encoder.EncodePrompt(ids, null, 1);
        TensorAssert.Close(skipped, expected, 1e-5, 1e-5, "clip skip 2");
        var last = encoder.EncodePrompt(ids, null, 0);
        TensorAssert.Close(last, Functional.LayerNorm(Functional.Embedding(ids, embedding).Pow(2), [256], weight, bias, 1e-5), 1e-5, 1e-5, "clip skip 1");
        Assert.True(TensorAssert.MaxAbsDifference(skipped, last) > 1e-3);
    }

    [Fact]
    public void AGraphWithoutTheFinalLayerNormsWeightsRefusesClipSkipInOneLine()
    {
        using var scope = DisposeScope.Enter();
        var generator = new Generator(6);
        var path = Encoder("some_norm", false, Tensors.Randn([10, 256], generator), Tensors.Randn([256], generator), Tensors.Randn([256], generator));
        using var encoder = OnnxTextEncoder.Open(path, null, OnnxFixture.Engine);
        var ids = Tensor.From(new long[] { 1, 4, 9 }, 1, 3);
        var e = Assert.Throws<InvalidDataException>(() => encoder.EncodePrompt(ids, null, 1));
        Assert.Contains("text_model.final_layer_norm.weight", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal([1, 3, 256], encoder.EncodePrompt(ids, null, 0).Shape); // clip skip 1 needs no extra weights
    }
}
