using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// SDXL textual inversion on the tiny SDXL model (hidden sizes 32 and 64): clip_l vectors go to the first tokenizer and
/// encoder, clip_g to the second, under the same tokens, as diffusers' SDXL recipe (load_textual_inversion once per encoder).
/// </summary>
public sealed class SdxlTextualInversionTests(ITestOutputHelper output) : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ld-xl-ti-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private static StableDiffusionPipeline Load() => StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);

    private static ClipTextModel Second(StableDiffusionPipeline pipe) => ((Engines.TorchTextEncoder)pipe.Models.TextEncoder2!).Module;

    private static Tensor Rows(ClipTextModel encoder) => encoder.TextModel.Embeddings.TokenEmbedding.Weight;

    private string Save(string name, params (string Key, Tensor Value)[] tensors)
    {
        var path = Path.Combine(folder, name);
        SafeTensorsFile.Save(path, tensors.Select(t => KeyValuePair.Create(t.Key, t.Value)));
        return path;
    }

    private static Tensor Hidden(ClipTextModel encoder, ClipTokenizer tokenizer, string prompt)
    {
        using var inference = Autograd.InferenceMode();
        using var result = encoder.Forward(Tensor.From(tokenizer.Encode(prompt).InputIdsInt64(), 1, 77));
        return result.LastHiddenState.Clone();
    }

    [Fact]
    public void ClipLAndClipGGrowBothTokenizersAndEncodersUnderTheSameTokens()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = Load();
        using var g = new Generator(5);
        var clipL = Tensors.Randn([2, 32], g);
        var clipG = Tensors.Randn([2, 64], g);
        var path = Save("xlstyle.safetensors", ("clip_l", clipL), ("clip_g", clipG));
        const string prompt = "a xlstyle horse";
        var before1 = Hidden(pipe.TextEncoder, pipe.Tokenizer, prompt);
        var before2 = Hidden(Second(pipe), pipe.Tokenizer2!, prompt);
        var (next1, next2) = (pipe.Tokenizer.MaxTokenId + 1, pipe.Tokenizer2!.MaxTokenId + 1);
        var (rows1, rows2) = (Rows(pipe.TextEncoder).Size(0), Rows(Second(pipe)).Size(0));
        var request = new GenerationRequest { Prompt = prompt, Steps = 2, GuidanceScale = 5, Width = 64, Height = 64, Seed = 2 };
        using var plain = pipe.TextToImage(request);

        var embedding = pipe.Embeddings.Load(path);
        Assert.Equal(["xlstyle", "xlstyle_1"], embedding.Tokens);
        Assert.Equal([next1, next1 + 1], embedding.Tokens.Select(t => pipe.Tokenizer.TokenToId(t)));
        Assert.Equal([next2, next2 + 1], embedding.Tokens.Select(t => pipe.Tokenizer2!.TokenToId(t)));
        Assert.Equal(rows1 + 2, Rows(pipe.TextEncoder).Size(0));
        Assert.Equal(rows2 + 2, Rows(Second(pipe)).Size(0));
        Assert.Equal(rows1 + 2, pipe.TextEncoder.Config.VocabSize);
        Assert.Equal(rows2 + 2, Second(pipe).Config.VocabSize);
        Assert.True(Rows(pipe.TextEncoder).Narrow(0, rows1, 2).Equal(clipL), "text_encoder's new rows are clip_l");
        Assert.True(Rows(Second(pipe)).Narrow(0, rows2, 2).Equal(clipG), "text_encoder_2's new rows are clip_g");

        var warnings = new List<string>();
        var rewritten = pipe.Embeddings.Rewrite(prompt, warnings);
        Assert.Equal("a xlstyle xlstyle_1 horse", rewritten);
        Assert.Empty(warnings);
        Assert.Contains(next1, pipe.Tokenizer.Encode(rewritten).InputIdsInt64());
        Assert.Contains(next2 + 1, pipe.Tokenizer2!.Encode(rewritten).InputIdsInt64());
        var change1 = (Hidden(pipe.TextEncoder, pipe.Tokenizer, rewritten) - before1).Abs().Max().Item();
        var change2 = (Hidden(Second(pipe), pipe.Tokenizer2!, rewritten) - before2).Abs().Max().Item();
        Assert.True(change1 > 1e-3 && change2 > 1e-3, $"the embedding changed the encoders' outputs by only {change1} and {change2}");

        using var styled = pipe.TextToImage(request);
        var difference = (styled.Pixels - plain.Pixels).Abs().Max().Item();
        output.WriteLine($"hidden states change {change1:E2} / {change2:E2}; image max |difference| {difference:E2}");
        Assert.True(difference > 1e-3, $"the embedding changed the image by only {difference}");
        var tiHashes = $"xlstyle: {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)))[..12]}";
        Assert.Equal(tiHashes, styled.Parameters[0].Extra.Single(e => e.Key == "TI hashes").Value);

        // prompt_2 is rewritten for the second tokenizer as the prompt is: naming it explicitly changes nothing, and an
        // embedding only prompt_2 uses is recorded
        using var explicitSecond = pipe.TextToImage(request with { Xl = new XlOptions { Prompt2 = prompt } });
        Assert.True(explicitSecond.Pixels.Equal(styled.Pixels), "prompt_2 = the prompt gives the image of no prompt_2");
        using var secondOnly = pipe.TextToImage(request with { Prompt = "a horse", Xl = new XlOptions { Prompt2 = prompt } });
        Assert.Equal(tiHashes, secondOnly.Parameters[0].Extra.Single(e => e.Key == "TI hashes").Value);
    }

    [Fact]
    public void AnEmbeddingThatDoesNotFitIsOneLineAndChangesNothing()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = Load();
        var (rows1, rows2) = (Rows(pipe.TextEncoder).Size(0), Rows(Second(pipe)).Size(0));
        var wide = Save("wide.safetensors", ("clip_l", Tensors.Zeros([1, 32])), ("clip_g", Tensors.Zeros([1, 1280])));
        var e = Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(wide));
        Assert.EndsWith("wide.safetensors: the embedding's clip_g vectors have 1280 values but their text encoder's have 64: it was made for another model", e.Message);
        var counts = Save("counts.safetensors", ("clip_l", Tensors.Zeros([1, 32])), ("clip_g", Tensors.Zeros([2, 64])));
        Assert.Contains("clip_l has 1 vectors and clip_g has 2 vectors", Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(counts)).Message);
        var sd1 = Save("sd1.safetensors", ("emb_params", Tensors.Zeros([1, 32])));
        Assert.Contains("not an SDXL embedding", Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(sd1)).Message);
        var half = Save("half.safetensors", ("clip_g", Tensors.Zeros([1, 64])));
        Assert.Contains("the SDXL embedding has no clip_l vectors", Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(half)).Message);
        Assert.Equal(rows1, Rows(pipe.TextEncoder).Size(0));
        Assert.Equal(rows2, Rows(Second(pipe)).Size(0));
        Assert.Equal(rows1 - 1, pipe.Tokenizer.MaxTokenId);
        Assert.Empty(pipe.Embeddings.Loaded);
    }
}
