using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Torch.NN;

/// <summary>Finds and loads the weight files of model folders saved by diffusers/transformers (<c>save_pretrained</c>).</summary>
public static class Pretrained
{
    /// <summary>The config file of every model folder.</summary>
    public const string ConfigName = "config.json";

    /// <summary>diffusers' weight file base name (models: U-Nets, VAEs, ControlNets).</summary>
    public const string DiffusersWeights = "diffusion_pytorch_model";

    /// <summary>transformers' weight file base name (CLIP text encoders).</summary>
    public const string TransformersWeights = "model";

    /// <summary>The weight file name for <paramref name="variant"/>: <c>{baseName}.{variant}.safetensors</c>, or <c>{baseName}.safetensors</c>.</summary>
    public static string WeightsFile(string baseName, string? variant = null) =>
        variant is null ? $"{baseName}.safetensors" : $"{baseName}.{variant}.safetensors";

    /// <summary>
    /// The weight file of a model folder: <c>{baseName}.{variant}.safetensors</c> when a variant
    /// ("fp16") is asked for and present, else <c>{baseName}.safetensors</c>, else any single
    /// *.safetensors file. Pickle checkpoints (.bin/.ckpt/.pt) are refused by name.
    /// </summary>
    public static string FindWeights(string directory, string baseName, string? variant = null)
    {
        if (!Directory.Exists(directory)) throw new FileNotFoundException($"{directory}: model folder not found");
        if (variant is not null)
        {
            var withVariant = Path.Combine(directory, WeightsFile(baseName, variant));
            if (File.Exists(withVariant)) return withVariant;
        }
        var plain = Path.Combine(directory, WeightsFile(baseName));
        if (File.Exists(plain)) return plain;
        var any = Directory.GetFiles(directory, "*.safetensors");
        if (any.Length == 1) return any[0];
        var pickles = Directory.GetFiles(directory).Where(f => f.EndsWith(".bin") || f.EndsWith(".ckpt") || f.EndsWith(".pt") || f.EndsWith(".pth")).ToList();
        if (pickles.Count > 0)
            throw new FileNotFoundException($"{directory}: only pickle weights ({Path.GetFileName(pickles[0])}) found; pickle files are not executed or parsed, convert them to .safetensors");
        throw new FileNotFoundException($"{directory}: no {WeightsFile(baseName)}");
    }

    /// <summary>
    /// Builds a model without drawing its random initialisation (unless <paramref name="skipInitialization"/>
    /// is false: a converter that loads only part of it), loads its weights, moves it to
    /// <paramref name="device"/> and <paramref name="dtype"/> and returns it in evaluation mode; nothing
    /// stays allocated when any step fails. Every pretrained loader ends here.
    /// </summary>
    public static TModel Build<TModel>(Func<TModel> create, Action<TModel> load, Device? device, DType? dtype, bool skipInitialization = true)
        where TModel : Module
    {
        TModel model;
        using (skipInitialization ? Init.SkipInitialization() : null) model = create();
        try
        {
            // The dtype first, while the tensors are still unwritten: the weights then load straight into it,
            // tensor by tensor, and a bf16 model never exists as a full f32 copy (issue 19).
            if (dtype is { } first) model.To(first);
            load(model);
            if (device is { } d) model.To(d, dtype);
            else if (dtype is { } t) model.To(t);
            return model.Eval();
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads every tensor of <paramref name="file"/> into <paramref name="module"/>, after the modules'
    /// <see cref="Module.LoadStateDict"/> upgrade hooks renamed older keys. Strict: every missing,
    /// unexpected and mismatched name is listed in the error, which names the file. Values convert to
    /// each parameter's dtype (an fp16 file loads into an fp32 model). Names and shapes are checked from the
    /// header first; then one tensor at a time is read, checked finite, copied and freed, so loading needs
    /// the model's memory and one tensor's, never a second copy of the model.
    /// </summary>
    public static void LoadWeights(Module module, string file, bool strict = true)
    {
        using var weights = SafeTensorsFile.Open(file);
        // Stand-ins with each tensor's shape and dtype and one element of memory, for the name and shape checks.
        var names = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
        var standIns = new Dictionary<string, Tensor>();
        try
        {
            foreach (var name in weights.Keys)
            {
                var info = weights.Info(name);
                using var one = Tensors.Zeros([.. info.Shape.Select(_ => 1L)], info.DType);
                var standIn = one.Expand(info.Shape).DetachFromDisposeScope();
                standIns[name] = standIn;
                names[standIn] = name;
            }
            var (_, copies) = module.MatchStateDict(standIns, strict);
            using var noGrad = Autograd.NoGrad();
            foreach (var (target, standIn) in copies)
            {
                var name = names[standIn];
                using var tensor = weights.Load(name);
                RequireFinite(file, [new(name, tensor)]);
                target.CopyFrom(tensor);
            }
        }
        catch (StateDictException e)
        {
            throw new InvalidDataException($"{file}: {e.Message}", e);
        }
        finally
        {
            foreach (var t in standIns.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Refuses weights holding NaN or ±Inf, naming the tensor and <paramref name="file"/>: such a model would
    /// otherwise load and produce black or noise images with no hint why. One pass over each floating tensor,
    /// cheap next to reading it.
    /// </summary>
    public static void RequireFinite(string file, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        foreach (var (name, tensor) in tensors)
        {
            if (!tensor.DType.IsFloatingPoint() || tensor.NumEl == 0) continue;
            using var scope = DisposeScope.Enter();
            var bad = tensor.IsFinite().LogicalNot().Sum().ItemInt64();
            if (bad > 0)
                throw new InvalidDataException($"{file}: tensor '{name}' has {bad} non-finite value{(bad == 1 ? "" : "s")} (NaN or ±Inf)");
        }
    }
}

/// <summary>
/// How one kind of model lives in a diffusers/transformers folder: <c>config.json</c> read into its
/// config record, <c>{WeightsName}[.{variant}].safetensors</c>. Every model declares one, and its
/// <c>FromPretrained</c> and <c>Save</c> are this class's <see cref="Load"/> and <see cref="Save"/>, so
/// that device, dtype, variants and the strict key and shape checks behave the same for all of them.
/// </summary>
public sealed class PretrainedFormat<TModel, TConfig> where TModel : Module
{
    /// <summary>Reads and validates a config.json (errors name the file and the field).</summary>
    public required Func<string, TConfig> ReadConfig { get; init; }

    /// <summary>Builds the architecture of a config (the loader skips its random initialisation).</summary>
    public required Func<TConfig, TModel> Create { get; init; }

    /// <summary>Writes the model's config.json, in the format its reference library reads.</summary>
    public required Action<string, TModel> WriteConfig { get; init; }

    /// <summary>Base name of the weight file: <see cref="Pretrained.DiffusersWeights"/> or <see cref="Pretrained.TransformersWeights"/>.</summary>
    public string WeightsName { get; init; } = Pretrained.DiffusersWeights;

    /// <summary>
    /// Loads a model folder: its config, then its weights (the <paramref name="variant"/> file, e.g.
    /// "fp16", when present), then moves it to <paramref name="device"/> and <paramref name="dtype"/>.
    /// The model is returned in evaluation mode; nothing is left allocated when loading fails.
    /// </summary>
    public TModel Load(string directory, Device? device = null, DType? dtype = null, string? variant = null)
    {
        if (!Directory.Exists(directory)) throw new FileNotFoundException($"{directory}: model folder not found");
        var config = ReadConfig(Path.Combine(directory, Pretrained.ConfigName));
        var weights = Pretrained.FindWeights(directory, WeightsName, variant);
        return Pretrained.Build(() => Create(config), model => Pretrained.LoadWeights(model, weights), device, dtype);
    }

    /// <summary>
    /// Writes config.json and the weights in the model's dtype (<c>{WeightsName}.{variant}.safetensors</c>
    /// with a variant), each file atomically, so that diffusers' / transformers' from_pretrained loads them.
    /// </summary>
    public void Save(TModel model, string directory, string? variant = null)
    {
        Directory.CreateDirectory(directory);
        WriteConfig(Path.Combine(directory, Pretrained.ConfigName), model);
        SafeTensorsFile.Save(Path.Combine(directory, Pretrained.WeightsFile(WeightsName, variant)), model.StateDict(),
            new Dictionary<string, string> { ["format"] = "pt" });
    }
}
