using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// transformers' <c>CLIPTextConfig</c> (config.json of a CLIPTextModel). Defaults are transformers 4.43's
/// (openai/clip-vit-base-patch32's text tower); SD1.x uses ViT-L/14's: hidden 768, 12 layers, 12 heads.
/// </summary>
public sealed record ClipTextConfig : IModelConfig<ClipTextConfig>
{
    public const string ModelType = "clip_text_model";
    public const string Architecture = "CLIPTextModel";
    public const string ArchitectureWithProjection = "CLIPTextModelWithProjection";

    /// <summary>
    /// Keys PretrainedConfig writes for every model (generation settings, labels, output flags) that do not
    /// change a CLIP text model's forward pass; older transformers wrote them all into config.json.
    /// </summary>
    public static readonly IReadOnlyList<string> GenericKeys =
    [
        "add_cross_attention", "bad_words_ids", "begin_suppress_tokens", "chunk_size_feed_forward", "cross_attention_hidden_size",
        "decoder_start_token_id", "diversity_penalty", "do_sample", "early_stopping", "encoder_no_repeat_ngram_size",
        "exponential_decay_length_penalty", "finetuning_task", "forced_bos_token_id", "forced_eos_token_id", "gradient_checkpointing",
        "id2label", "is_decoder", "is_encoder_decoder", "label2id", "length_penalty", "max_length", "min_length", "no_repeat_ngram_size",
        "num_beam_groups", "num_beams", "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores", "prefix",
        "problem_type", "pruned_heads", "remove_invalid_values", "repetition_penalty", "return_dict", "return_dict_in_generate",
        "sep_token_id", "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder",
        "tie_word_embeddings", "tokenizer_class", "top_k", "top_p", "torchscript", "typical_p", "use_bfloat16",
    ];

    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 49408;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 512;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 2048;

    /// <summary>Size of CLIP's joint text/image space; used by the projection heads, not by this model.</summary>
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 512;

    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 8;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 77;

    /// <summary>quick_gelu (CLIP), gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu/swish.</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "quick_gelu";

    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-5;
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }

    /// <summary>Written by older transformers; the text model applies no hidden-state dropout.</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; }

    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; } = 1;
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; } = 49406;

    /// <summary>
    /// The pooled output is taken at the first position of this token, except for the legacy value 2
    /// (configs written before transformers PR #24773), where it is the position of the largest id.
    /// </summary>
    [JsonPropertyName("eos_token_id")] public int? EosTokenId { get; init; } = 49407;

    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    [JsonPropertyName("model_type")] public string? ModelTypeName { get; init; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }
    [JsonPropertyName("transformers_version")] public string? TransformersVersion { get; init; }

    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Reads a transformers config.json; unknown fields and unsupported values are errors naming the field.</summary>
    // transformers configs carry no _class_name; "architectures" and "model_type" are checked by Validate.
    static string? IModelConfig<ClipTextConfig>.ConfigClassName => null;

    static IEnumerable<string>? IModelConfig<ClipTextConfig>.IgnoredKeys => GenericKeys;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the field.</summary>
    public static ClipTextConfig Load(string path) => ModelConfig.Load<ClipTextConfig>(path);

    public void Validate(string source = "CLIPTextConfig")
    {
        var check = new ConfigCheck(source);
        if (ModelTypeName is not null) check.OneOf(ModelTypeName, "model_type", ModelType);
        if (Architectures is not null)
            check.That(Architectures.Contains(Architecture) || Architectures.Contains(ArchitectureWithProjection), "architectures",
                $"is [{string.Join(", ", Architectures)}]; only {Architecture} and {ArchitectureWithProjection} are supported");
        check.Positive(VocabSize, "vocab_size");
        check.Positive(HiddenSize, "hidden_size");
        check.Positive(IntermediateSize, "intermediate_size");
        check.Positive(ProjectionDim, "projection_dim");
        check.Positive(NumHiddenLayers, "num_hidden_layers");
        check.Positive(NumAttentionHeads, "num_attention_heads");
        check.Divisible(HiddenSize, "hidden_size", NumAttentionHeads, "num_attention_heads");
        check.Positive(MaxPositionEmbeddings, "max_position_embeddings");
        check.That(ClipActivation.IsSupported(HiddenAct), "hidden_act",
            $"is \"{HiddenAct}\", which is not supported (use one of {string.Join(", ", ClipActivation.Names)})");
        check.PositiveFinite(LayerNormEps, "layer_norm_eps");
        check.InRange(AttentionDropout, "attention_dropout", 0, 1);
        check.InRange(Dropout, "dropout", 0, 1);
        // Standard deviations of the initial weights.
        check.NotNegativeFinite(InitializerRange, "initializer_range");
        check.NotNegativeFinite(InitializerFactor, "initializer_factor");
        if (EosTokenId is null) throw check.Fail("eos_token_id", "is needed for the pooled output");
    }
}
