using System.Text.Json;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Onnx;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>
/// <c>ldm bench unet --engine onnx</c>: the benchmark's U-Net (its random weights) exported to ONNX in a temporary folder,
/// the libtorch weights freed, and the forward run by ONNX Runtime with the same inputs. The peak resident set is reset
/// (Linux clear_refs) once the export is done, so the reported peak is ONNX Runtime's, not the export's.
/// </summary>
internal static class OnnxUNet
{
    /// <param name="profile">Open the session with ONNX Runtime's profiler on; <see cref="BenchTarget.EngineProfile"/> then reports its last run by op type.</param>
    public static string Attach(BenchTarget target, bool profile)
    {
        var unet = (UNet2DConditionModel)target.Model;
        var folder = Directory.CreateTempSubdirectory("ld-bench-onnx-");
        try
        {
            var path = Path.Combine(folder.FullName, "model.onnx");
            using (var graph = UNetExport.Emit(unet)) graph.Save(path, 17);
            var config = unet.Config;
            foreach (var p in unet.Parameters()) p.Dispose(); // the libtorch weights go before ONNX Runtime loads its copy
            GC.Collect();
            ModelBenchmark.ResetPeakRss();
            var options = new OnnxEngineOptions { ProfilePrefix = profile ? Path.Combine(Path.GetTempPath(), $"ld-bench-ort-{Environment.ProcessId}") : null };
            var denoiser = OnnxDenoiser.Open(path, config, options);
            target.EngineResources = denoiser;
            // SDXL's benchmark inputs add the pooled text embeddings and the time ids
            target.Engine = inputs => denoiser.Forward(inputs[0], 500, inputs.Length > 3
                ? new DenoiserConditioning(inputs[1], TextEmbeds: inputs[2], TimeIds: inputs[3])
                : new DenoiserConditioning(inputs[1]));
            if (profile)
                target.EngineProfile = () =>
                {
                    target.Run().Dispose(); // the profiled run: the last in the trace
                    var trace = denoiser.EndProfiling();
                    try
                    {
                        return FromTrace(File.ReadAllText(trace));
                    }
                    finally
                    {
                        File.Delete(trace);
                    }
                };
            return $"onnxruntime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version} (CPU, {TorchRuntime.Threads} threads)";
        }
        finally
        {
            folder.Delete(recursive: true); // the session has read the file; the weights live in ONNX Runtime now
        }
    }

    /// <summary>
    /// ONNX Runtime's profile (a Chrome trace: "Session" events per run, "Node" events per kernel with its op type and input
    /// shapes), the last <c>model_run</c> only, summed by op type. The attention's batched products (MatMul or FusedMatMul
    /// on 4-D inputs: [batch, heads, tokens, channels]) and its Softmax are counted as attention, the other MatMuls
    /// (linear layers) as linear/matmul; FLOPs of convolutions and products from the recorded shapes.
    /// </summary>
    public static ModelProfile FromTrace(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var events = doc.RootElement.EnumerateArray().ToList();
        var run = events.LastOrDefault(e => Str(e, "cat") == "Session" && Str(e, "name") == "model_run");
        if (run.ValueKind == JsonValueKind.Undefined) throw new InvalidDataException("ONNX Runtime's profile has no model_run event");
        long start = run.GetProperty("ts").GetInt64(), end = start + run.GetProperty("dur").GetInt64();
        var ops = new Dictionary<string, (long Calls, long Us, double Flops, bool AllCounted)>();
        foreach (var e in events)
        {
            if (Str(e, "cat") != "Node" || !(Str(e, "name")?.EndsWith("_kernel_time", StringComparison.Ordinal) ?? false)) continue;
            var ts = e.GetProperty("ts").GetInt64();
            if (ts < start || ts > end || !e.TryGetProperty("args", out var args)) continue;
            var op = Str(args, "op_name") ?? "?";
            var shapes = Shapes(args);
            var key = op is "MatMul" or "FusedMatMul" && shapes.Count > 0 && shapes[0].Length == 4 ? op + " (attention)" : op;
            var flops = Flops(op, shapes);
            ops.TryGetValue(key, out var a);
            ops[key] = (a.Calls + 1, a.Us + e.GetProperty("dur").GetInt64(), a.Flops + (flops ?? 0), (a.Calls == 0 || a.AllCounted) && flops is not null);
        }
        var entries = ops.Select(kv => new OpProfileEntry(kv.Key, kv.Value.Calls, kv.Value.Us / 1e6, kv.Value.AllCounted ? kv.Value.Flops : null));
        return ModelProfile.From("ONNX Runtime's profiler (SessionOptions.EnableProfiling), node kernel times of the last run", run.GetProperty("dur").GetInt64() / 1e6, entries);
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    // args.input_type_shape: [{"float": [2, 320, 32, 32]}, …]
    private static List<long[]> Shapes(JsonElement args)
    {
        var list = new List<long[]>();
        if (!args.TryGetProperty("input_type_shape", out var shapes) || shapes.ValueKind != JsonValueKind.Array) return list;
        foreach (var s in shapes.EnumerateArray())
            foreach (var p in s.EnumerateObject())
                list.Add(p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray() : []);
        return list;
    }

    // 2 · MACs of the products, from their input shapes: MatMul [.., M, K] × [.., K, N]; Gemm [M, K] × [K, N] or [N, K].
    private static double? Flops(string op, List<long[]> shapes)
    {
        if (op is "MatMul" or "FusedMatMul" && shapes.Count >= 2 && shapes[0].Length >= 2 && shapes[1].Length >= 2)
        {
            var a = shapes[0];
            var n = shapes[1][^1];
            double rows = a.Take(a.Length - 1).Aggregate(1.0, (x, d) => x * d);
            return 2 * rows * a[^1] * n;
        }
        if (op is "Gemm" or "FusedGemm" && shapes.Count >= 2 && shapes[0].Length == 2 && shapes[1].Length == 2)
            return 2.0 * shapes[0][0] * shapes[1][0] * shapes[1][1];
        return null;
    }
}
