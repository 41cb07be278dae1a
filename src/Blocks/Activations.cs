using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// diffusers' <c>get_activation</c>: the activation an <c>act_fn</c>-like config value names. diffusers lowercases
/// the name first, so the match is case-insensitive.
/// </summary>
public static class Activations
{
    public static readonly IReadOnlyList<string> Names = ["swish", "silu", "mish", "gelu", "relu"];

    /// <summary>Whether <paramref name="name"/> names a supported activation.</summary>
    public static bool IsSupported(string? name) => name is not null && Names.Contains(name.ToLowerInvariant());

    /// <summary>The activation module for <paramref name="name"/>; an unknown name is a <see cref="ConfigException"/> naming <paramref name="field"/>.</summary>
    public static Module<Tensor, Tensor> Create(string name, string field = "act_fn") => name.ToLowerInvariant() switch
    {
        "swish" or "silu" => new SiLU(),
        "mish" => new Mish(),
        "gelu" => new GELU(),
        "relu" => new ReLU(),
        _ => throw ConfigErrors.Unsupported(field, name, string.Join(", ", Names)),
    };

    /// <summary>
    /// act(norm(x)), diffusers' GroupNorm → activation pair. With SiLU both run in one pass over the output where the
    /// fused kernel applies (<see cref="FusedNorm"/>: inference, AVX-512), else GroupNorm then SiLU as before.
    /// </summary>
    public static Tensor GroupNormThen(GroupNorm norm, Module<Tensor, Tensor> act, Tensor x) =>
        act is SiLU ? norm.ForwardSilu(x) : norm.Forward(x).Then(act.Forward);
}

/// <summary>torch.nn.Mish: x · tanh(softplus(x)), softplus written stably as max(x, 0) + log1p(exp(−|x|)).</summary>
public sealed class Mish : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var softplus = input.Clamp(min: 0) + input.Abs().Neg().Exp().Log1p();
        return scope.Keep(input * softplus.Tanh());
    }
}
