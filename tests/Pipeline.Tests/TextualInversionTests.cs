using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Check 11 of the v2 goldens: an AUTOMATIC1111 2-vector embedding loaded as diffusers' load_textual_inversion does.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class TextualInversionTests(TinyStableDiffusion tiny, ITestOutputHelper output) : IClassFixture<TinyStableDiffusion>, IDisposable
{
    private static string TinyToken => SharedData.Fixture("pipeline/lora/tinytoken.safetensors");
    private readonly string folder = Directory.CreateTempSubdirectory("ld-ti-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void TheEmbeddingGivesTheGoldenIdsAndTextEncoderOutputs()
    {
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/textual_inversion.safetensors"));
        using var pipe = tiny.Load();
        var embedding = pipe.Embeddings.Load(TinyToken);
        Assert.Equal("tinytoken", embedding.Name);
        Assert.Equal(["tinytoken", "tinytoken_1"], embedding.Tokens);
        Assert.Equal(934, pipe.Tokenizer.TokenToId("tinytoken"));
        Assert.Equal(935, pipe.Tokenizer.TokenToId("tinytoken_1"));
        Assert.Equal(936, pipe.TextEncoder.Config.VocabSize);

        string[] prompts = ["a photograph of tinytoken riding a horse", "tinytoken, oil painting of a tinytoken cat"];
        var warnings = new List<string>();
        var converted = prompts.Select(p => pipe.Embeddings.Rewrite(p, warnings)).ToArray();
        Assert.Equal(["a photograph of tinytoken tinytoken_1 riding a horse", "tinytoken tinytoken_1, oil painting of a tinytoken tinytoken_1 cat"], converted);
        Assert.Empty(warnings);

        var ids = converted.SelectMany(p => pipe.Tokenizer.Encode(p).InputIdsInt64()).ToArray();
        using var expectedIds = golden.Load("input.input_ids");
        Assert.Equal(expectedIds.ToArray<long>(), ids);

        using var scope = DisposeScope.Enter();
        using var inference = Autograd.InferenceMode();
        using var result = pipe.TextEncoder.Forward(Tensor.From(ids, 2, 77));
        var hidden = TensorAssert.Close(result.LastHiddenState, golden.Load("output.last_hidden_state"), 2e-5, 1e-4, "last_hidden_state");
        var pooled = TensorAssert.Close(result.PoolerOutput, golden.Load("output.pooler_output"), 2e-5, 1e-4, "pooler_output");
        output.WriteLine($"check 11: ids exact; last_hidden_state max |error| {hidden:E2}, pooler_output {pooled:E2} (atol 2e-5, rtol 1e-4)");
    }

    [Fact]
    public void TheParametersListTheEmbeddingsThePromptsUseWithA1111sShortHash()
    {
        using var pipe = tiny.Load();
        pipe.Embeddings.Load(TinyToken);
        var style = Path.Combine(folder, "my,style.safetensors");
        using (var v = Tensors.Full([1, 32], 0.25)) SafeTensorsFile.Save(style, [KeyValuePair.Create("emb_params", v)]);
        var unused = Path.Combine(folder, "unused.safetensors");
        using (var v = Tensors.Full([1, 32], 0.5)) SafeTensorsFile.Save(unused, [KeyValuePair.Create("emb_params", v)]);
        pipe.Embeddings.Load(style);
        pipe.Embeddings.Load(unused);
        // sha256sum tests/fixtures/pipeline/lora/tinytoken.safetensors: 6be62b069f3d052a…
        Assert.Equal("6be62b069f3d", pipe.Embeddings.Loaded[0].ShortHash);
        var styleHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(style)))[..12];

        GenerationRequest Request(string prompt, string negative) => new() { Prompt = prompt, NegativePrompt = negative, Steps = 1, Width = 64, Height = 64 };
        // the prompt's first, then the negative prompt's; each once; ',' and ':' taken out of the name; an unused one absent
        using (var both = pipe.TextToImage(Request("a (tinytoken:1.2) cat, embedding:tinytoken", "my,style, blurry")))
        {
            Assert.Equal($"tinytoken: 6be62b069f3d, mystyle: {styleHash}", both.Parameters[0].Extra.Single(e => e.Key == "TI hashes").Value);
            Assert.Contains($"TI hashes: \"tinytoken: 6be62b069f3d, mystyle: {styleHash}\"", both.Parameters[0].Format());
        }
        using (var negativeOnly = pipe.TextToImage(Request("a cat", "tinytoken")))
            Assert.Equal("tinytoken: 6be62b069f3d", negativeOnly.Parameters[0].Extra.Single(e => e.Key == "TI hashes").Value);
        // no embedding in the prompts (loaded ones and their spelled-apart letters do not count): no field
        using (var none = pipe.TextToImage(Request("a cat in the hall, un used", "blurry")))
            Assert.DoesNotContain(none.Parameters[0].Extra, e => e.Key == "TI hashes");
    }

    [Fact]
    public void ADiffusersLearnedEmbedsFileIsNamedByItsTokenAndASingleVectorNeedsNoRewrite()
    {
        var path = Path.Combine(folder, "learned_embeds.safetensors");
        using (var v = Tensors.Full([32], 0.5)) SafeTensorsFile.Save(path, [KeyValuePair.Create("<cat-toy>", v)]);
        using var pipe = tiny.Load();
        var e = pipe.Embeddings.Load(path);
        Assert.Equal(["<cat-toy>"], e.Tokens);
        var warnings = new List<string>();
        Assert.Equal("a <cat-toy> on a table", pipe.Embeddings.Rewrite("a <cat-toy> on a table", warnings));
        var ids = pipe.Tokenizer.EncodeIds("a <cat-toy> on a table");
        Assert.Contains(934, ids);
        var row = pipe.TextEncoder.TextModel.Embeddings.TokenEmbedding.Weight.Narrow(0, 934, 1);
        Assert.Equal(0.5f, row.ToArray<float>().Distinct().Single());
        row.Dispose();
    }

    [Fact]
    public void BadEmbeddingsAreOneLineAndChangeNothing()
    {
        using var pipe = tiny.Load();
        var wide = Path.Combine(folder, "wide.safetensors");
        using (var v = Tensors.Zeros([1, 768])) SafeTensorsFile.Save(wide, [KeyValuePair.Create("emb_params", v)]);
        var e = Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(wide));
        Assert.EndsWith("wide.safetensors: the embedding's vectors have 768 values but this text encoder's have 32: it was made for another model", e.Message);
        var nan = Path.Combine(folder, "nan.safetensors");
        using (var v = Tensors.Full([2, 32], double.NaN)) SafeTensorsFile.Save(nan, [KeyValuePair.Create("emb_params", v)]);
        Assert.Contains("non-finite", Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(nan)).Message);
        var pickle = Path.Combine(folder, "style.pt");
        File.WriteAllBytes(pickle, [0x80, 0x02]);
        Assert.Contains("pickle format (.pt) are not loaded", Assert.Throws<NotSupportedException>(() => pipe.Embeddings.Load(pickle)).Message);
        Assert.Equal(934, pipe.TextEncoder.TextModel.Embeddings.TokenEmbedding.NumEmbeddings);
        Assert.Equal(933, pipe.Tokenizer.MaxTokenId);
        // A name that is already a token (here: the same embedding twice)
        pipe.Embeddings.Load(TinyToken);
        Assert.EndsWith("cannot add embedding 'tinytoken': 'tinytoken' is already a token of this tokenizer; choose another name",
            Assert.Throws<InvalidDataException>(() => pipe.Embeddings.Load(TinyToken)).Message);
        Assert.Equal(936, pipe.TextEncoder.TextModel.Embeddings.TokenEmbedding.NumEmbeddings);
    }

    [Fact]
    public void ADirectoryLoadsWhatFitsAndAPromptNamingASkippedOrUnknownEmbeddingWarns()
    {
        File.Copy(TinyToken, Path.Combine(folder, "tinytoken.safetensors"));
        File.WriteAllBytes(Path.Combine(folder, "oldstyle.pt"), [0x80, 0x02]);
        using var pipe = tiny.Load();
        var warnings = pipe.Embeddings.LoadDirectory(folder);
        Assert.Contains("oldstyle.pt", Assert.Single(warnings));
        Assert.Equal("tinytoken", Assert.Single(pipe.Embeddings.Loaded).Name);
        var seen = new List<string>();
        var rewritten = pipe.Embeddings.Rewrite("oldstyle, embedding:tinytoken, embedding:nosuch", seen);
        Assert.Equal("oldstyle, tinytoken tinytoken_1, embedding:nosuch", rewritten);
        Assert.Equal(2, seen.Count);
        Assert.Contains(seen, w => w.StartsWith("embedding 'nosuch' in the prompt is not loaded", StringComparison.Ordinal));
        Assert.Contains(seen, w => w.StartsWith("embedding 'oldstyle' in the prompt is not loaded", StringComparison.Ordinal));

        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "a tinytoken embedding:nosuch", Steps = 1, Width = 64, Height = 64 });
        Assert.Single(result.Warnings);
        Assert.Equal("a tinytoken embedding:nosuch", result.Parameters[0].Prompt);
    }
}
