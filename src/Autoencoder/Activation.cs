using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>diffusers' <c>get_activation</c>: the activations an <c>act_fn</c> config value may name.</summary>
public static class Activation
{
    public static readonly IReadOnlyList<string> Names = ["swish", "silu", "mish", "gelu", "relu"];

    /// <summary>Whether <paramref name="actFn"/> names a supported activation (case-insensitive, as diffusers lowercases it).</summary>
    public static bool IsSupported(string? actFn) => actFn is not null && Names.Contains(actFn.ToLowerInvariant());

    /// <summary>The activation module for <paramref name="actFn"/>; an unknown name is a <see cref="ConfigException"/> naming <paramref name="field"/>.</summary>
    public static Module<Tensor, Tensor> Create(string actFn, string field = "act_fn") => actFn.ToLowerInvariant() switch
    {
        "swish" or "silu" => new SiLU(),
        "mish" => new Mish(),
        "gelu" => new GELU(),
        "relu" => new ReLU(),
        _ => throw Unsupported(actFn, field),
    };

    internal static ConfigException Unsupported(string? actFn, string field) =>
        new($"'{field}' is \"{actFn}\", which is not supported (use one of {string.Join(", ", Names)})");
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
