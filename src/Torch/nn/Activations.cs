namespace LatentDiffusion.Torch.NN;

/// <summary>torch.nn.Identity: returns a new handle onto the input (so the caller owns every result).</summary>
public sealed class Identity : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => input.Alias();
}

/// <summary>torch.nn.Dropout: zeroes elements with probability <see cref="P"/> in training mode only.</summary>
public sealed class Dropout : Module<Tensor, Tensor>
{
    public double P { get; }

    public Dropout(double p = 0.5)
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1]");
        P = p;
    }

    public override Tensor Forward(Tensor input) => Functional.Dropout(input, P, IsTraining);

    /// <summary>Whether Forward changes anything: training with P &gt; 0 (otherwise it returns its input).</summary>
    public bool Active => IsTraining && P > 0;
}

public sealed class SiLU : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => input.Silu();
}

public sealed class ReLU : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => input.Relu();
}

public sealed class Sigmoid : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => input.Sigmoid();
}

public sealed class Tanh : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => input.Tanh();
}

/// <summary>CLIP's quick_gelu: x · sigmoid(1.702 x).</summary>
public sealed class QuickGELU : Module<Tensor, Tensor>
{
    public override Tensor Forward(Tensor input) => Functional.QuickGelu(input);
}

/// <summary>torch.nn.GELU with approximate "none" (erf) or "tanh".</summary>
public sealed class GELU : Module<Tensor, Tensor>
{
    public string Approximate { get; }

    public GELU(string approximate = "none")
    {
        if (approximate is not ("none" or "tanh"))
            throw new ArgumentException($"GELU approximate must be \"none\" or \"tanh\", not \"{approximate}\"", nameof(approximate));
        Approximate = approximate;
    }

    public override Tensor Forward(Tensor input) => Functional.Gelu(input, Approximate == "tanh");
}
