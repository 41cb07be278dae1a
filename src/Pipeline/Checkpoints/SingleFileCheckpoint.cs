using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Pipeline.Checkpoints;

/// <summary>
/// A single-file Stable Diffusion checkpoint in the original layout (model.diffusion_model.*,
/// first_stage_model.*, cond_stage_model.*), read lazily and renamed to the diffusers names of its
/// unet, vae and text_encoder components. Pickle checkpoints (.ckpt/.pt) are not executed or parsed.
/// </summary>
public sealed class SingleFileCheckpoint : IDisposable
{
    private readonly SafeTensorsFile file;
    private readonly Dictionary<string, List<(string Original, MappedKey Target)>> components = new();

    public string FilePath => file.FilePath;
    public CheckpointKind Kind { get; }

    /// <summary>The U-Net's input channels read from its first convolution (<see cref="CheckpointKind.UNetInChannels"/>).</summary>
    public int UNetInChannels { get; }

    private SingleFileCheckpoint(SafeTensorsFile file, CheckpointKind kind, LdmKeyMapping mapping, int unetInChannels)
    {
        this.file = file;
        Kind = kind;
        UNetInChannels = unetInChannels;
        foreach (var key in file.Keys)
        {
            MappedKey? mapped;
            try { mapped = mapping.Map(key); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{file.FilePath}: {e.Message}", e); }
            if (mapped is null) continue;
            foreach (var target in LdmKeyMapping.Expand(mapped))
            {
                if (!components.TryGetValue(target.Component, out var list)) components[target.Component] = list = [];
                list.Add((key, target));
            }
        }
    }

    public static SingleFileCheckpoint Open(string path, CheckpointKind? overrideKind = null)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is ".ckpt" or ".pt" or ".pth" or ".bin")
            throw new NotSupportedException($"{path}: pickle checkpoints are not loaded (they can run arbitrary code); convert it to .safetensors first");
        var file = SafeTensorsFile.Open(path);
        try
        {
            var shapes = file.Keys.ToDictionary(k => k, k => file.Info(k).Shape);
            var kind = overrideKind ?? CheckpointKind.Infer(shapes, path);
            return new SingleFileCheckpoint(file, kind, LdmKeyMapping.Infer(file.Keys), CheckpointKind.UNetInChannels(shapes));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<string> Components => components.Keys;

    /// <summary>
    /// The named tensors of one component ("unet", "vae", "text_encoder") with diffusers names.
    /// Text-encoder layers at or beyond <paramref name="maxTextLayers"/> are left out (diffusers'
    /// SD 2.x text encoder keeps 23 of OpenCLIP's 24 layers). The caller owns the tensors.
    /// </summary>
    public Dictionary<string, Tensor> Load(string component, DType? dtype = null, int? maxTextLayers = null)
    {
        if (!components.TryGetValue(component, out var entries))
            throw new InvalidDataException($"{FilePath}: has no {component} tensors");
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (original, target) in entries)
            {
                if (maxTextLayers is int max && TextLayer(target.Name) is int layer && layer >= max) continue;
                result[target.Name] = Transform(file.Load(original, dtype), target.Transform);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    private static int? TextLayer(string name)
    {
        const string prefix = "text_model.encoder.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var end = name.IndexOf('.', prefix.Length);
        return int.Parse(name.AsSpan(prefix.Length, end - prefix.Length));
    }

    private static Tensor Transform(Tensor t, TensorTransform transform)
    {
        switch (transform)
        {
            case TensorTransform.None:
                return t;
            case TensorTransform.SqueezeConv1x1:
                using (t) return t.Dim == 4 ? t.Flatten(1) : t.Clone();
            case TensorTransform.Transpose:
                using (t)
                using (var transposed = t.Transpose(0, 1))
                    return transposed.Contiguous();
            default:
                using (t)
                {
                    var third = t.Size(0) / 3;
                    var index = transform switch { TensorTransform.QueryThird => 0, TensorTransform.KeyThird => 1, _ => 2 };
                    using var view = t.Narrow(0, index * third, third);
                    return view.Clone(); // a compact copy, not a view that keeps the fused tensor alive
                }
        }
    }

    public void Dispose() => file.Dispose();
}
