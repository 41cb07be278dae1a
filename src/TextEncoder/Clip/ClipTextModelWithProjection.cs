using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// transformers' <c>CLIPTextModelWithProjection</c>: the same text transformer as <see cref="ClipTextModel"/> plus
/// <c>text_projection</c>, a Linear hidden_size → projection_dim WITHOUT bias, applied to the pooled output to give
/// <c>text_embeds</c> (CLIP's joint text/image space). SDXL's second text encoder (OpenCLIP ViT-bigG/14) is one:
/// its text_embeds are SDXL's pooled prompt embedding.
/// </summary>
public sealed class ClipTextModelWithProjection : ClipTextModel
{
    public Linear TextProjection { get; }

    public ClipTextModelWithProjection(ClipTextConfig config, Generator? generator = null)
        : base(config, ClipTextConfig.ArchitectureWithProjection, generator)
    {
        TextProjection = RegisterModule("text_projection", new Linear(config.HiddenSize, config.ProjectionDim, bias: false, generator: generator));
    }

    protected override Tensor? Project(Tensor pooled) => TextProjection.Forward(pooled);

    /// <summary>How a CLIPTextModelWithProjection lives in a transformers folder (config.json + model.safetensors).</summary>
    public static new PretrainedFormat<ClipTextModelWithProjection, ClipTextConfig> Format { get; } = new()
    {
        ReadConfig = ClipTextConfig.Load,
        Create = config => new ClipTextModelWithProjection(config),
        WriteConfig = (path, model) => model.WriteConfig(path),
        WeightsName = Pretrained.TransformersWeights,
    };

    /// <summary>Loads a transformers folder (config.json + model[.variant].safetensors), e.g. SDXL's text_encoder_2/, in evaluation mode.</summary>
    public static new ClipTextModelWithProjection FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and model[.variant].safetensors, loadable by transformers' from_pretrained.</summary>
    public new void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);
}
