using System.Text.Json;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>
/// A tokenizer golden (goldens/tokenizer_*.safetensors, copied to tests/fixtures/textencoder):
/// int64 id tensors per prompt and variant, with the manifest entry (prompts, specials) in the
/// safetensors metadata.
/// </summary>
internal sealed class TokenizerGoldenFile
{
    private readonly Dictionary<string, long[]> tensors = [];

    private TokenizerGoldenFile(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        foreach (var key in file.Keys)
        {
            using var tensor = file.Load(key);
            tensors[key] = tensor.ToArray<long>();
        }
        using var manifest = JsonDocument.Parse(file.Metadata["json"]);
        Prompts = manifest.RootElement.GetProperty("prompts").EnumerateArray().Select(p => new GoldenPrompt(
            p.GetProperty("index").GetInt32(),
            p.GetProperty("prompt").GetString()!,
            p.GetProperty("variants_agree").GetBoolean(),
            p.GetProperty("bpe_tokens_noftfy").EnumerateArray().Select(t => t.GetString()!).ToArray(),
            p.TryGetProperty("openai_simple_tokenizer_ids", out var openai) ? openai.EnumerateArray().Select(i => i.GetInt32()).ToArray() : null)).ToArray();
        var specials = manifest.RootElement.GetProperty("special_tokens");
        BosId = specials.GetProperty("bos_id").GetInt32();
        EosId = specials.GetProperty("eos_id").GetInt32();
        PadId = specials.GetProperty("pad_id").GetInt32();
        VocabularySize = specials.GetProperty("vocab_size").GetInt32();
    }

    public static TokenizerGoldenFile Tiny => TinyFile.Value;
    public static TokenizerGoldenFile ClipFull => ClipFullFile.Value;

    private static readonly Lazy<TokenizerGoldenFile> TinyFile = new(() => new(SharedData.Fixture("textencoder/tokenizer_tiny.safetensors")));
    private static readonly Lazy<TokenizerGoldenFile> ClipFullFile = new(() => new(SharedData.Fixture("textencoder/tokenizer_clip_full.safetensors")));

    public IReadOnlyList<GoldenPrompt> Prompts { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    public int VocabularySize { get; }

    /// <summary>e.g. Ids(3, "noftfy", "input_ids") → p03.noftfy.input_ids as ints.</summary>
    public int[] Ids(int index, string variant, string name) =>
        Array.ConvertAll(tensors[$"p{index:00}.{variant}.{name}"], v => checked((int)v));

    /// <summary>Prompt indices of a golden, read from its header only (cheap at test discovery).</summary>
    public static TheoryData<int> Indices(string fixture)
    {
        using var file = SafeTensorsFile.Open(SharedData.Fixture(fixture));
        using var manifest = JsonDocument.Parse(file.Metadata["json"]);
        var data = new TheoryData<int>();
        foreach (var prompt in manifest.RootElement.GetProperty("prompts").EnumerateArray()) data.Add(prompt.GetProperty("index").GetInt32());
        return data;
    }
}

internal sealed record GoldenPrompt(int Index, string Prompt, bool VariantsAgree, string[] BpeTokensNoFtfy, int[]? OpenAiIds);
