using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.TextEncoder.Tests;

public class ClipTextModelTests(ITestOutputHelper output)
{
    [SharedDataFact]
    public void Sd15TextEncoderHasTransformersArchitecture()
    {
        var config = ClipTextConfig.Load(SharedData.Path("data/sd15-config/text_encoder/config.json"));
        Assert.Equal(768, config.HiddenSize);
        Assert.Equal(2, config.EosTokenId); // the legacy value: pooled at the argmax
        using (Init.SkipInitialization())
        using (var model = new ClipTextModel(config))
        {
            Assert.Equal(123_060_480, model.ParameterCount);
            var keys = model.StateDict().Keys.ToList();
            Assert.Equal(196, keys.Count);
            Assert.Contains("text_model.embeddings.token_embedding.weight", keys);
            Assert.Contains("text_model.embeddings.position_embedding.weight", keys);
            Assert.Contains("text_model.encoder.layers.11.self_attn.out_proj.bias", keys);
            Assert.Contains("text_model.encoder.layers.0.mlp.fc2.weight", keys);
            Assert.Contains("text_model.final_layer_norm.weight", keys);
            Assert.DoesNotContain("text_model.embeddings.position_ids", keys); // a non-persistent buffer
            Assert.Contains(model.NamedBuffers(), b => b.Name == "text_model.embeddings.position_ids");
        }
    }

    [Fact]
    public void ConfigAcceptsTransformersGenericKeysAndRejectsUnknownOnes()
    {
        var config = ConfigJson.Parse<ClipTextConfig>("""
            {"_name_or_path": "x", "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "torch_dtype": "float16",
             "transformers_version": "4.22.0.dev0", "return_dict": true, "output_hidden_states": false, "id2label": {"0": "LABEL_0"},
             "dropout": 0.0, "hidden_size": 64, "num_attention_heads": 4}
            """, "config.json", ClipTextConfig.GenericKeys);
        config.Validate();
        Assert.Equal(64, config.HiddenSize);
        Assert.Equal(16, config.HeadDim);
        Assert.Equal(49407, config.EosTokenId);
        Assert.Equal("quick_gelu", config.HiddenAct);
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<ClipTextConfig>("""{"hiden_size": 3}""", "config.json", ClipTextConfig.GenericKeys));
        Assert.Contains("'hiden_size'", e.Message);
    }

    [Theory]
    [InlineData("""{"hidden_act": "selu"}""", "hidden_act")]
    [InlineData("""{"hidden_size": 30, "num_attention_heads": 4}""", "num_attention_heads")]
    [InlineData("""{"model_type": "clip"}""", "model_type")]
    [InlineData("""{"architectures": ["CLIPVisionModelWithProjection"]}""", "architectures")]
    [InlineData("""{"eos_token_id": null}""", "eos_token_id")]
    public void UnsupportedValuesAreErrorsNamingTheField(string json, string field)
    {
        var config = ConfigJson.Parse<ClipTextConfig>(json, "text_encoder/config.json");
        var e = Assert.Throws<ConfigException>(() => config.Validate("text_encoder/config.json"));
        Assert.Contains($"'{field}'", e.Message);
    }

    [Fact]
    public void SaveWritesTransformersConfigAndReloadsTheSameWeights()
    {
        var directory = Directory.CreateTempSubdirectory("ld-clip-").FullName;
        try
        {
            using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
            model.Save(directory);
            var text = File.ReadAllText(Path.Combine(directory, "config.json"));
            Assert.Contains("\"architectures\": [\n    \"CLIPTextModel\"\n  ]", text.Replace("\r", ""));
            Assert.Contains("\"model_type\": \"clip_text_model\"", text);
            Assert.DoesNotContain("_class_name", text);
            Assert.True(text.IndexOf("\"attention_dropout\"", StringComparison.Ordinal) < text.IndexOf("\"vocab_size\"", StringComparison.Ordinal));
            using var file = SafeTensorsFile.Open(Path.Combine(directory, "model.safetensors"));
            Assert.DoesNotContain("text_model.embeddings.position_ids", file.Keys);
            using var loaded = ClipTextModel.FromPretrained(directory);
            Assert.Equal(model.Config with { Architectures = null, ModelTypeName = null, TorchDtype = null, TransformersVersion = null },
                loaded.Config with { Architectures = null, ModelTypeName = null, TorchDtype = null, TransformersVersion = null });
            var original = model.StateDict();
            foreach (var (name, tensor) in loaded.StateDict()) Assert.True(tensor.Equal(original[name]), name);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void OlderCheckpointsWithPersistedPositionIdsLoad()
    {
        var directory = Directory.CreateTempSubdirectory("ld-clip-legacy-").FullName;
        try
        {
            File.Copy(Path.Combine(ClipTextAssert.TinyModel, "config.json"), Path.Combine(directory, "config.json"));
            var state = SafeTensorsFile.LoadFile(Path.Combine(ClipTextAssert.TinyModel, "model.safetensors"));
            using (var positions = Tensors.Arange(77))
                state["text_model.embeddings.position_ids"] = positions.Unsqueeze(0);
            SafeTensorsFile.Save(Path.Combine(directory, "model.safetensors"), state);
            foreach (var t in state.Values) t.Dispose();
            using var model = ClipTextModel.FromPretrained(directory);
            Assert.Equal(2, model.NumLayers);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void EncodeWeightedScalesTokensAndRestoresTheMean()
    {
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        using var noGrad = Autograd.NoGrad();
        using var ids = Tensor.From([932L, 10, 20, 933, 933], 1, 5);
        float[][] weights = [[1f, 1.5f, 0.8f, 1f, 1f]];
        using var z = model.EncodePrompt(ids);
        using var weighted = model.EncodeWeighted(ids, weights);
        using var zMean = z.Mean();
        using var weightedMean = weighted.Mean();
        Assert.Equal(zMean.Item(), weightedMean.Item(), 5);

        // Each token is z·w times the same correction factor mean(z) / mean(z·w).
        using var w = Tensor.From(weights[0], 1, 5, 1);
        using var scaled = z * w;
        using var scaledMean = scaled.Mean();
        using var expected = scaled * (zMean.Item() / scaledMean.Item());
        Assert.True(TensorMax(weighted - expected) < 1e-5);

        using var ones = model.EncodeWeighted(ids, [[1f, 1f, 1f, 1f, 1f]]);
        Assert.True(TensorMax(ones - z) < 1e-6);
    }

    private static double TensorMax(Tensor t)
    {
        using (t)
        using (var abs = t.Abs())
        using (var max = abs.Max())
            return max.Item();
    }

    [Fact]
    public void GradientsReachEveryParameterAndTrainingReducesALoss()
    {
        using var g = new Generator(3);
        var config = new ClipTextConfig { VocabSize = 50, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 2,
            MaxPositionEmbeddings = 8, EosTokenId = 49, AttentionDropout = 0.1 };
        using var model = new ClipTextModel(config, g);
        using var ids = Tensor.From([0L, 5, 9, 49, 49, 49, 49, 49, 0, 7, 7, 7, 3, 49, 49, 49], 2, 8);
        using var target = Tensors.Randn([2, 8, 16], g);
        using var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2);
        double first = 0, last = 0;
        for (int step = 0; step < 20; step++)
        {
            using var scope = DisposeScope.Enter();
            optimizer.ZeroGrad();
            using var result = model.Forward(ids);
            var loss = Functional.MseLoss(result.LastHiddenState, target) + result.PoolerOutput.Square().Mean();
            loss.Backward();
            if (step == 0)
            {
                foreach (var (name, p) in model.NamedParameters())
                {
                    using var grad = p.Grad;
                    Assert.True(grad is not null, $"{name} has no gradient");
                }
                first = loss.Item();
            }
            optimizer.Step();
            last = loss.Item();
        }
        output.WriteLine($"loss {first:G4} → {last:G4} after 20 AdamW steps (attention dropout 0.1 in training mode)");
        Assert.True(last < 0.5 * first);
    }

    [Theory]
    [InlineData("gelu_new")]
    [InlineData("gelu_pytorch_tanh")]
    [InlineData("gelu_fast")]
    public void TanhGeluVariantsAgreeWithTheFormula(string name)
    {
        using var x = Tensor.From([-3f, -1f, -0.1f, 0f, 0.5f, 2f], 6);
        using var y = ClipActivation.Apply(name, x);
        var values = y.ToArray<float>();
        float[] inputs = [-3f, -1f, -0.1f, 0f, 0.5f, 2f];
        for (int i = 0; i < inputs.Length; i++)
        {
            double v = inputs[i];
            var expected = 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            Assert.Equal(expected, values[i], 5);
        }
    }

    [Fact]
    public void QuickGeluIsXTimesSigmoidOf1702X()
    {
        using var x = Tensor.From([-2f, 0.5f], 2);
        using var y = ClipActivation.Apply("quick_gelu", x);
        Assert.Equal(-2 / (1 + Math.Exp(2 * 1.702)), y.ToArray<float>()[0], 6);
        Assert.Equal(0.5 / (1 + Math.Exp(-0.5 * 1.702)), y.ToArray<float>()[1], 6);
    }
}

[Collection(LiveTensorCount.Name)]
public class ClipTextLeakTests
{
    [Fact]
    public void ForwardsFreeTheirTemporaries()
    {
        using var model = ClipTextModel.FromPretrained(ClipTextAssert.TinyModel);
        using var ids = Tensor.From([932L, 10, 20, 933, 933, 932, 5, 933, 933, 933], 2, 5);
        void Run()
        {
            using (var result = model.Forward(ids, outputHiddenStates: true)) { }
            using (var skipped = model.EncodePrompt(ids, clipSkip: 1)) { }
            using (var weighted = model.EncodeWeighted(ids, [[1f, 1.2f, 1f, 1f, 1f], [1f, 0.9f, 1f, 1f, 1f]])) { }
            using var scope = DisposeScope.Enter();
            model.ZeroGrad();
            using var training = model.Forward(ids);
            training.LastHiddenState.Sum().Backward();
        }
        Run();
        var before = Settled();
        for (int i = 0; i < 3; i++) Run();
        Assert.Equal(before, Settled());
    }

    private static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }
}
