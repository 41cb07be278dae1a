using LatentDiffusion.Torch;

namespace LatentDiffusion.TextEncoder;

/// <summary>The hidden_act values of transformers' ACT2FN that a CLIP text model may use.</summary>
public static class ClipActivation
{
    public static readonly IReadOnlyList<string> Names = ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish"];

    public static bool IsSupported(string? name) => name is not null && Names.Contains(name);

    /// <summary>Applies <paramref name="name"/> to <paramref name="x"/>; the result is a new tensor.</summary>
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        // x · σ(1.702 x), OpenAI CLIP's approximation.
        "quick_gelu" => Functional.QuickGelu(x),
        "gelu" => Functional.Gelu(x),
        "gelu_pytorch_tanh" => Functional.Gelu(x, tanhApproximation: true),
        // ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), written as transformers' NewGELUActivation does.
        "gelu_new" => TanhGelu(x, (inner, cube) => (inner + cube * 0.044715) * Math.Sqrt(2.0 / Math.PI)),
        // ½ x (1 + tanh(0.7978845608 x (1 + 0.044715 x²))) (transformers' FastGELUActivation).
        "gelu_fast" => TanhGelu(x, (inner, _) => inner * 0.7978845608 * (1.0 + inner * 0.044715 * inner)),
        "relu" => x.Relu(),
        "silu" or "swish" => x.Silu(),
        _ => throw new ArgumentException($"hidden_act \"{name}\" is not supported", nameof(name)),
    };

    private static Tensor TanhGelu(Tensor x, Func<Tensor, Tensor, Tensor> argument)
    {
        using var scope = DisposeScope.Enter();
        var tanh = argument(x, x.Pow(3.0)).Tanh();
        return scope.Keep(x * 0.5 * (1.0 + tanh));
    }
}
