using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Training.Lora;

/// <summary>
/// One trained low-rank adapter beside a frozen linear layer (Hu et al. 2021): Δy = (alpha / rank) · up(down(x)), with
/// kohya's member names (lora_down, lora_up, alpha) and initialisation (down as nn.Linear's default, up zero, so training
/// starts from the unchanged model).
/// </summary>
public sealed class LoraLayer : Module
{
    public Linear Down { get; }
    public Linear Up { get; }
    public Tensor Alpha { get; }
    public double Scale { get; }

    public LoraLayer(long inFeatures, long outFeatures, int rank, double alpha, Generator? generator = null)
    {
        Down = RegisterModule("lora_down", new Linear(inFeatures, rank, bias: false, generator));
        Up = RegisterModule("lora_up", new Linear(rank, outFeatures, bias: false, generator));
        using (Autograd.NoGrad()) Up.Weight.Zero_();
        Alpha = RegisterBuffer("alpha", Tensors.Scalar(alpha));
        Scale = alpha / rank;
    }

    public Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        return scope.Keep(Up.Forward(Down.Forward(input)) * Scale);
    }
}

/// <summary>
/// The LoRA layers of a training run, children named by their kohya names (<c>lora_unet_…_attn1_to_q</c>), so that the state
/// dict is the kohya / AUTOMATIC1111 file itself: <c>&lt;name&gt;.lora_down.weight</c>, <c>.lora_up.weight</c>, <c>.alpha</c>.
/// Targets: the U-Net's attention projections (to_q, to_k, to_v, to_out.0: diffusers' train_text_to_image_lora.py) and
/// optionally the text encoder's (q_proj, k_proj, v_proj, out_proj). <see cref="Attach"/> adds each layer's output to its
/// target's (the unmerged forward y = Wx + scale · up(down(x))), so gradients reach only the adapters.
/// </summary>
public sealed class LoraNetwork : Module
{
    public static readonly string[] UnetTargets = ["to_q", "to_k", "to_v", "to_out.0"];
    public static readonly string[] TextEncoderTargets = ["q_proj", "k_proj", "v_proj", "out_proj"];

    private readonly List<(Linear Target, LoraLayer Layer)> pairs = [];

    public int Rank { get; }
    public double AlphaValue { get; }

    /// <param name="components">The frozen modules by component name ("unet", "text_encoder"), each with its target names.</param>
    public LoraNetwork(IEnumerable<(string Component, Module Module, string[] Targets)> components, int rank, double alpha, Generator? generator = null)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "the LoRA rank must be at least 1");
        Rank = rank;
        AlphaValue = alpha;
        foreach (var (component, module, targets) in components)
            foreach (var (path, child) in module.NamedModules())
            {
                if (child is not Linear linear || !targets.Any(t => path == t || path.EndsWith("." + t, StringComparison.Ordinal))) continue;
                var layer = RegisterModule(LoraFile.KohyaName(component, path), new LoraLayer(linear.InFeatures, linear.OutFeatures, rank, alpha, generator));
                pairs.Add((linear, layer));
            }
        if (pairs.Count == 0) throw new ArgumentException("the model has no layer a LoRA targets (attention projections)", nameof(components));
    }

    public int LayerCount => pairs.Count;

    /// <summary>Adds the adapters to their layers' outputs.</summary>
    public void Attach()
    {
        foreach (var (target, layer) in pairs) target.Adapter = layer.Forward;
    }

    /// <summary>Takes the adapters off: the layers are the frozen model's again.</summary>
    public void Detach()
    {
        foreach (var (target, _) in pairs) target.Adapter = null;
    }

    /// <summary>Writes the kohya-format file (atomically), float32, with kohya's ss_ metadata.</summary>
    public void Save(string path)
    {
        var metadata = new Dictionary<string, string>
        {
            ["ss_network_module"] = "networks.lora",
            ["ss_network_dim"] = Rank.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ss_network_alpha"] = AlphaValue.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        using var scope = DisposeScope.Enter();
        SafeTensorsFile.Save(path, StateDict().Select(p => KeyValuePair.Create(p.Key, p.Value.Detach().To(Device.CPU, DType.Float32))), metadata);
    }
}
