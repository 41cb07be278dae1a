using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// A request's adapters: its LoRAs (GenerationRequest.Loras and the prompt's <lora:…> tags) merged for its run, its prompts
// rewritten for the loaded textual-inversion embeddings.
public sealed partial class StableDiffusionPipeline
{
    private LoraAdapters? loras;
    private TextualInversions? embeddings;

    /// <summary>The LoRAs merged into the U-Net and text encoders; a generation merges its request's set (<see cref="GenerationRequest.Loras"/>).</summary>
    public LoraAdapters Loras => loras ??= new LoraAdapters(LoraComponents());

    /// <summary>
    /// The textual-inversion embeddings added to the tokenizers (which are then replaced) and the text encoders: SDXL's files
    /// carry clip_l vectors for the first encoder and clip_g for the second (a refiner's only one).
    /// </summary>
    public TextualInversions Embeddings => embeddings ??= new TextualInversions(EmbeddingTargets(), grown =>
    {
        Tokenizer = grown[0];
        if (grown.Count > 1) Tokenizer2 = grown[1];
        prompts = prompts.WithTokenizers(Tokenizer, Tokenizer2);
    });

    // diffusers' component names: SDXL's second encoder is text_encoder_2, and a refiner's one encoder is that second one.
    private Dictionary<string, Module> LoraComponents()
    {
        var components = new Dictionary<string, Module> { ["unet"] = Unet };
        if (Xl is null) components["text_encoder"] = TextEncoder;
        else if (Models.TextEncoder2 is null) components["text_encoder_2"] = TextEncoder;
        else (components["text_encoder"], components["text_encoder_2"]) = (TextEncoder, SecondTextEncoder);
        return components;
    }

    private IReadOnlyList<EmbeddingTarget> EmbeddingTargets()
    {
        if (Xl is null) return [new EmbeddingTarget(null, () => Tokenizer, () => TextEncoder)];
        if (Models.TextEncoder2 is null) return [new EmbeddingTarget("clip_g", () => Tokenizer, () => TextEncoder)];
        return [new EmbeddingTarget("clip_l", () => Tokenizer, () => TextEncoder), new EmbeddingTarget("clip_g", () => Tokenizer2!, () => SecondTextEncoder)];
    }

    private ClipTextModel SecondTextEncoder => Models.TextEncoder2 is TorchTextEncoder t ? t.Module : throw NotTorch("second text encoder");

    // Whether the merged set was made for a request (then a request without LoRAs restores the model) or by a caller of Loras.Apply.
    private bool lorasFromRequest;

    /// <summary>What a request's adapters change: the request the encoder sees (tags removed), the PNG parameters' prompt and fields, warnings.</summary>
    private sealed record AdapterRun(GenerationRequest Encoded, string RecordedPrompt, IReadOnlyList<KeyValuePair<string, string>> Parameters, IReadOnlyList<string> Warnings);

    /// <summary>
    /// Merges the request's LoRAs (a missing --lora file is an error; a tag naming no file in <see cref="LoraAdapters.Directory"/> a
    /// warning, as AUTOMATIC1111's "Networks not found"). The merged set stays after the run, so the next request with the same
    /// LoRAs merges nothing; a request without any puts the model's own weights back.
    /// </summary>
    private AdapterRun PrepareAdapters(GenerationRequest r)
    {
        var (prompt, tags) = LoraPromptTags.Extract(r.Prompt);
        var warnings = new List<string>();
        var encoded = r with { Prompt = Embeddings.Rewrite(prompt, warnings), NegativePrompt = Embeddings.Rewrite(r.NegativePrompt, warnings) };
        // SDXL's prompt_2 goes to the second tokenizer, which has the same added tokens (diffusers' maybe_convert_prompt on each).
        if (r.Xl is { } xl && (xl.Prompt2 is not null || xl.NegativePrompt2 is not null))
            encoded = encoded with
            {
                Xl = xl with
                {
                    Prompt2 = xl.Prompt2 is null ? null : Embeddings.Rewrite(xl.Prompt2, warnings),
                    NegativePrompt2 = xl.NegativePrompt2 is null ? null : Embeddings.Rewrite(xl.NegativePrompt2, warnings),
                },
            };
        // A1111 adds "TI hashes" after "Lora hashes", for the embeddings the encoded prompts use
        var tiHashes = Embeddings.HashesField(new[] { encoded.Prompt, encoded.Xl?.Prompt2, encoded.NegativePrompt, encoded.Xl?.NegativePrompt2 }.OfType<string>());
        KeyValuePair<string, string>[] tiField = tiHashes is null ? [] : [new("TI hashes", tiHashes)];
        var selections = new List<(string Alias, LoraSelection Selection)>();
        foreach (var wanted in r.Loras)
        {
            var file = Loras.Load(wanted.PathOrName);
            selections.Add((file.Name, new LoraSelection(file, wanted.Scale, wanted.TextEncoderScale)));
        }
        foreach (var tag in tags)
        {
            try
            {
                selections.Add((tag.PathOrName, new LoraSelection(Loras.Load(tag.PathOrName), tag.Scale, tag.TextEncoderScale)));
            }
            catch (FileNotFoundException e)
            {
                warnings.Add(e.Message);
            }
        }
        if (selections.Count == 0)
        {
            if (lorasFromRequest) Loras.Restore();
            lorasFromRequest = false;
            return new AdapterRun(encoded, r.Prompt, tiField, warnings);
        }
        warnings.AddRange(Loras.Apply([.. selections.Select(s => s.Selection)], r.StrictLoras));
        lorasFromRequest = true;

        // A1111 records LoRAs as prompt tags plus "Lora hashes: alias: hash, …"; a LoRA given outside the prompt gets its tag appended.
        var recorded = string.Concat(r.Loras.Zip(selections).Select(p => " " + LoraPromptTags.Format(p.Second.Alias, p.First.Scale, p.First.TextEncoderScale)));
        var hashes = string.Join(", ", selections.Select(s => $"{s.Alias.Replace(":", "").Replace(",", "")}: {s.Selection.File.ShortHash}"));
        return new AdapterRun(encoded, r.Prompt + recorded, [new("Lora hashes", hashes), .. tiField], warnings);
    }
}
