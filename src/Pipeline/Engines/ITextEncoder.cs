using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>
/// The prompt encoder of a latent pipeline (diffusers' pipe.text_encoder), whatever runs it: token ids [B, 77] → the
/// hidden states the denoiser cross-attends to.
/// </summary>
public interface ITextEncoder : IDisposable
{
    /// <summary>Transformer layers (the range of clip skip).</summary>
    int NumLayers { get; }

    /// <summary>
    /// diffusers' encode_prompt: the hidden state <paramref name="skippedLayers"/> layers before the last, through the final
    /// layer norm; with <paramref name="weights"/> [B, L], AUTOMATIC1111's emphasis (scale each token, restore the mean).
    /// </summary>
    Tensor EncodePrompt(Tensor inputIds, Tensor? weights, int skippedLayers);

    /// <summary>
    /// SDXL's encode_prompt: hidden_states[−(<paramref name="skippedLayers"/> + 2)] WITHOUT the final layer norm (emphasis
    /// applied as in <see cref="EncodePrompt"/>), and with <paramref name="pooled"/> the pooled output (text_embeds for a
    /// model with a projection). An engine that cannot give hidden states says so.
    /// </summary>
    ClipHiddenState EncodeHiddenState(Tensor inputIds, Tensor? weights, int skippedLayers, bool pooled) =>
        throw new NotSupportedException($"this engine's text encoder ({GetType().Name}) cannot give the hidden states SDXL needs");
}
