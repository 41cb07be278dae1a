using System.Text.Json.Nodes;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>
/// Golden check v2 #1: SDXL's two text encoders (tiny, random weights) against transformers 4.43 — the CLIPTextModel
/// (quick_gelu) and the CLIPTextModelWithProjection (gelu, text_projection without bias), each on its own tokenizer's
/// ids (tokenizer_2 pads with "!"), legacy eos_token_id 2 (pooled at argmax).
/// </summary>
public class SdxlTextEncoderGoldenTests(ITestOutputHelper output)
{
    // goldens/sdxl_text_encoders.safetensors tolerance in ../shared/golden/v2/manifest.json.
    private const double Atol = 3e-5, Rtol = 1e-4;

    private static string Model(string part) => SharedData.Fixture("sdxl/sdxl_tiny/" + part);

    private static Dictionary<string, Tensor> Golden(out string[] prompts)
    {
        var path = SharedData.Fixture("sdxl/goldens/sdxl_text_encoders.safetensors");
        using (var file = SafeTensorsFile.Open(path))
            prompts = JsonNode.Parse(file.Metadata["json"])!["prompts"]!.AsArray().Select(p => (string)p!).ToArray();
        return SafeTensorsFile.LoadFile(path);
    }

    [Fact]
    public void TokenizersGiveTheGoldenIds()
    {
        var golden = Golden(out var prompts);
        try
        {
            foreach (var (folder, key) in new[] { ("tokenizer", "input.input_ids"), ("tokenizer_2", "input.input_ids_2") })
            {
                var tokenizer = ClipTokenizer.FromDirectory(Model(folder));
                var expected = golden[key].ToArray<long>();
                for (int i = 0; i < prompts.Length; i++)
                    Assert.Equal(expected.Skip(i * 77).Take(77).ToArray(), tokenizer.Encode(prompts[i]).InputIdsInt64());
            }
        }
        finally
        {
            ClipTextAssert.Free(golden);
        }
    }

    [Fact]
    public void BothEncodersMatchTransformers()
    {
        using var first = ClipTextModel.FromPretrained(Model("text_encoder"));
        using var second = ClipTextModelWithProjection.FromPretrained(Model("text_encoder_2"));
        var golden = Golden(out _);
        try
        {
            using var noGrad = Autograd.NoGrad();
            using var a = first.Forward(golden["input.input_ids"], outputHiddenStates: true);
            Assert.Null(a.TextEmbeds);
            var e1 = new[]
            {
                TensorAssert.Close(a.LastHiddenState, golden["output.text_encoder.last_hidden_state"], Atol, Rtol, "text_encoder last_hidden_state"),
                TensorAssert.Close(a.HiddenStates[^2], golden["output.text_encoder.hidden_states_penultimate"], Atol, Rtol, "text_encoder hidden_states[-2]"),
                TensorAssert.Close(a.PoolerOutput, golden["output.text_encoder.pooler_output"], Atol, Rtol, "text_encoder pooler_output"),
            };
            using var b = second.Forward(golden["input.input_ids_2"], outputHiddenStates: true);
            var e2 = new[]
            {
                TensorAssert.Close(b.LastHiddenState, golden["output.text_encoder_2.last_hidden_state"], Atol, Rtol, "text_encoder_2 last_hidden_state"),
                TensorAssert.Close(b.HiddenStates[^2], golden["output.text_encoder_2.hidden_states_penultimate"], Atol, Rtol, "text_encoder_2 hidden_states[-2]"),
                TensorAssert.Close(b.TextEmbeds!, golden["output.text_encoder_2.text_embeds"], Atol, Rtol, "text_encoder_2 text_embeds"),
            };
            output.WriteLine($"max abs error text_encoder (last, [-2], pooled): {string.Join(", ", e1.Select(e => e.ToString("G3")))}; " +
                $"text_encoder_2 (last, [-2], text_embeds): {string.Join(", ", e2.Select(e => e.ToString("G3")))}; atol {Atol}, rtol {Rtol}");

            // SDXL's encode_prompt: the penultimate state without the final layer norm, and the projected pooled output.
            using var sdxl = second.EncodeHiddenState(golden["input.input_ids_2"], skippedLayers: 0, pooled: true);
            TensorAssert.Close(sdxl.Hidden, golden["output.text_encoder_2.hidden_states_penultimate"], Atol, Rtol, "EncodeHiddenState");
            TensorAssert.Close(sdxl.Pooled!, golden["output.text_encoder_2.text_embeds"], Atol, Rtol, "EncodeHiddenState pooled");
            using var short1 = first.EncodeHiddenState(golden["input.input_ids"], skippedLayers: 0);
            Assert.Null(short1.Pooled);
            TensorAssert.Close(short1.Hidden, golden["output.text_encoder.hidden_states_penultimate"], Atol, Rtol, "EncodeHiddenState (first)");
            // clip skip 1 (diffusers' count for SDXL) is hidden_states[-3].
            using var skipped = second.EncodeHiddenState(golden["input.input_ids_2"], skippedLayers: 1);
            TensorAssert.Close(skipped.Hidden, b.HiddenStates[^3], 0, 0, "clip skip 1");
        }
        finally
        {
            ClipTextAssert.Free(golden);
        }
    }

    [Fact]
    public void SavedWithProjectionLoadsBackAsTheSameModel()
    {
        using var model = ClipTextModelWithProjection.FromPretrained(Model("text_encoder_2"));
        var dir = Directory.CreateTempSubdirectory("ldm-clip-proj-").FullName;
        try
        {
            model.Save(dir);
            Assert.Contains("CLIPTextModelWithProjection", File.ReadAllText(Path.Combine(dir, "config.json")));
            using var back = ClipTextModelWithProjection.FromPretrained(dir);
            using var ids = Tensor.From(new long[] { 932, 64, 933, 0 }, 1, 4);
            using var noGrad = Autograd.NoGrad();
            using var x = model.Forward(ids);
            using var y = back.Forward(ids);
            TensorAssert.Close(y.TextEmbeds!, x.TextEmbeds!, 0, 0, "text_embeds after a round trip");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
