using LatentDiffusion.Torch;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = LatentDiffusion.Torch.Tensor;

namespace LatentDiffusion.Onnx;

/// <summary>
/// One ONNX graph under ONNX Runtime: the session, its input and output metadata (names, element types, static dims),
/// and a run that binds our tensors' memory directly (IOBinding: inputs are OrtValues over the tensors' elements,
/// outputs are written into tensors we allocated), so a step copies nothing between the engines.
/// Every ONNX Runtime failure becomes one line that names the file.
/// </summary>
internal sealed class OnnxSession : IDisposable
{
    public string Path { get; }
    public IReadOnlyDictionary<string, NodeMetadata> Inputs { get; }
    public IReadOnlyDictionary<string, NodeMetadata> Outputs { get; }

    private readonly InferenceSession session;
    private readonly RunOptions runOptions = new();

    private OnnxSession(string path, InferenceSession session)
    {
        Path = path;
        this.session = session;
        Inputs = session.InputMetadata;
        Outputs = session.OutputMetadata;
    }

    /// <summary>Opens <paramref name="path"/>; a missing, truncated or unloadable graph (missing external data, unsupported opset) is one line.</summary>
    public static OnnxSession Open(string path, OnnxEngineOptions options)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the ONNX model file is missing", path);
        using var sessionOptions = OnnxRuntimeSetup.SessionOptions(options);
        try
        {
            return new OnnxSession(path, new InferenceSession(path, sessionOptions));
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"{path}: ONNX Runtime cannot load this model: {OneLine(e.Message)}", e);
        }
    }

    /// <summary>Opens <paramref name="path"/> and wraps the session (<paramref name="wrap"/> checks its inputs); the session is closed if that fails.</summary>
    public static T OpenAs<T>(string path, OnnxEngineOptions options, Func<OnnxSession, T> wrap)
    {
        var session = Open(path, options);
        try
        {
            return wrap(session);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The first of <paramref name="names"/> that is an input of the graph, or null.</summary>
    public string? FindInput(params string[] names) => names.FirstOrDefault(Inputs.ContainsKey);

    /// <summary>The input the graph must have under one of <paramref name="names"/>; otherwise one line listing what it has.</summary>
    public string RequireInput(string role, params string[] names) =>
        FindInput(names) ?? throw new InvalidDataException($"{Path}: no {role} input ({string.Join(" or ", names)}); the graph's inputs are {Describe(Inputs)}");

    /// <summary>Refuses inputs beyond <paramref name="known"/>: they would be left unbound and the graph could not run.</summary>
    public void RejectUnknownInputs(params string?[] known)
    {
        var unknown = Inputs.Keys.Where(k => !known.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"{Path}: unrecognised input{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} (this engine feeds {string.Join(", ", known.Where(k => k is not null))}); the graph's inputs are {Describe(Inputs)}");
    }

    /// <summary>The output named <paramref name="name"/>, else the graph's first output.</summary>
    public string OutputOr(string name) => Outputs.ContainsKey(name) ? name : Outputs.Keys.First();

    /// <summary>The element dtype of an input or output as our <see cref="DType"/>.</summary>
    public DType DTypeOf(string name) => OnnxTensors.DTypeOf(Path, name, (Inputs.TryGetValue(name, out var m) ? m : Outputs[name]).ElementDataType);

    /// <summary>
    /// Runs the graph with <paramref name="inputs"/> (contiguous, in the dtype the graph declares) and writes the
    /// outputs into <paramref name="outputs"/> (allocated by the caller with the shape the graph will produce).
    /// </summary>
    public void Run(IReadOnlyList<(string Name, Tensor Value)> inputs, IReadOnlyList<(string Name, Tensor Value)> outputs)
    {
        foreach (var (name, value) in inputs) CheckShape(name, Inputs[name], value.Shape, "input");
        foreach (var (name, value) in outputs) CheckShape(name, Outputs[name], value.Shape, "output");
        var values = new List<OrtValue>(inputs.Count + outputs.Count);
        try
        {
            using var binding = session.CreateIoBinding();
            foreach (var (name, value) in inputs)
            {
                var view = OnnxTensors.View(value);
                values.Add(view);
                binding.BindInput(name, view);
            }
            foreach (var (name, value) in outputs)
            {
                var view = OnnxTensors.View(value);
                values.Add(view);
                binding.BindOutput(name, view);
            }
            binding.SynchronizeBoundInputs();
            session.RunWithBinding(runOptions, binding);
            binding.SynchronizeBoundOutputs();
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidOperationException($"{Path}: ONNX Runtime failed: {OneLine(e.Message)}", e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    // A request whose shape contradicts a static dimension of the graph: named before ONNX Runtime's own message.
    private void CheckShape(string name, NodeMetadata meta, long[] shape, string kind)
    {
        var dims = meta.Dimensions;
        var fits = dims.Length == shape.Length && dims.Zip(shape).All(p => p.First <= 0 || p.First == p.Second);
        if (!fits)
            throw new ArgumentException($"{Path}: {kind} '{name}' would be [{string.Join(", ", shape)}] but the model takes {Describe(meta)}");
    }

    internal static string Describe(NodeMetadata m) =>
        $"{OnnxTensors.TypeName(m.ElementDataType)} [{string.Join(", ", m.Dimensions.Select((d, i) => d > 0 ? d.ToString() : string.IsNullOrEmpty(m.SymbolicDimensions[i]) ? "?" : m.SymbolicDimensions[i]))}]";

    internal static string Describe(IReadOnlyDictionary<string, NodeMetadata> nodes) =>
        string.Join(", ", nodes.Select(p => $"'{p.Key}' {(p.Value.IsTensor ? Describe(p.Value) : p.Value.OnnxValueType.ToString())}"));

    /// <summary>ONNX Runtime's messages span lines; ours are one.</summary>
    internal static string OneLine(string message) => string.Join(" ", message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>Ends ONNX Runtime's profile (a session opened with <see cref="OnnxEngineOptions.ProfilePrefix"/>) and returns its JSON file.</summary>
    public string EndProfiling() => session.EndProfiling();

    public void Dispose()
    {
        runOptions.Dispose();
        session.Dispose();
    }
}
