using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>One category of a profile (convolution, linear/matmul, …): its operators' calls, total time, FLOPs.</summary>
public sealed record ProfileCategory(string Category, long Calls, double Ms, double Share, double? Gflops);

/// <summary>One operator of a profile, with its category.</summary>
public sealed record ProfileOp(string Op, string Category, long Calls, double Ms, double Share, double? Gflops);

/// <summary>
/// What <c>ldm bench unet|vae|text --profile</c> adds: one more forward pass, profiled. libtorch: its top-level
/// operators (<see cref="OpProfiler"/>: nested ones are inside their caller's time, so nothing is counted twice and
/// the categories sum to at most the wall time; <c>OutsideOpsMs</c> is the rest, C# and the binding). ONNX Runtime:
/// its own profiler's node times (SessionOptions.EnableProfiling) by op type, of the last run. <c>Top</c> is what the
/// table shows; <c>Ops</c> (every operator, slowest first) is in the JSON for the small rows (add, to, layer_norm).
/// </summary>
public sealed record ModelProfile(string Source, double WallMs, double OutsideOpsMs, IReadOnlyList<ProfileCategory> Categories, IReadOnlyList<ProfileOp> Top,
    IReadOnlyList<ProfileOp> Ops)
{
    public const int TopCount = 15;

    /// <summary>The report from <paramref name="ops"/> (name, calls, seconds, FLOPs) of a pass that took <paramref name="wallSeconds"/>.</summary>
    public static ModelProfile From(string source, double wallSeconds, IEnumerable<OpProfileEntry> ops)
    {
        var list = ops.ToList();
        var wallMs = wallSeconds * 1e3;
        double Share(double seconds) => Math.Round(seconds * 1e3 / wallMs, 4);
        double? Rate(double? flops, double seconds) => flops is { } f && seconds > 0 ? Math.Round(f / seconds / 1e9, 1) : null;
        var categories = list.GroupBy(o => Category(o.Name))
            .Select(g =>
            {
                var seconds = g.Sum(o => o.Seconds);
                var counted = g.Where(o => o.Flops is not null).ToList();
                double? flops = counted.Count > 0 ? counted.Sum(o => o.Flops!.Value) : null;
                return new ProfileCategory(g.Key, g.Sum(o => o.Calls), Math.Round(seconds * 1e3, 2), Share(seconds),
                    Rate(flops, counted.Sum(o => o.Seconds)));
            })
            .OrderBy(c => Array.IndexOf(Order, c.Category)).ToList();
        var all = list.OrderByDescending(o => o.Seconds)
            .Select(o => new ProfileOp(o.Name, Category(o.Name), o.Calls, Math.Round(o.Seconds * 1e3, 2), Share(o.Seconds), Rate(o.Flops, o.Seconds)))
            .ToList();
        return new ModelProfile(source, Math.Round(wallMs, 2), Math.Round(wallMs - list.Sum(o => o.Seconds) * 1e3, 2), categories,
            all.Take(TopCount).ToList(), all);
    }

    public static readonly string[] Order = ["convolution", "linear/matmul", "attention", "normalisation", "element-wise", "copies/other"];

    /// <summary>
    /// The category of an operator: a libtorch name (<c>aten::mkldnn_convolution</c>, with or without input shapes after a
    /// space) or an ONNX op type (<c>Conv</c>, <c>FusedConv</c>, <c>MatMul</c>, …).
    /// </summary>
    public static string Category(string op)
    {
        if (op.EndsWith(" (attention)", StringComparison.Ordinal)) return "attention"; // ONNX Runtime's attention products (OnnxUNet.FromTrace)
        var name = op.Split(' ')[0];
        var bare = name.Contains("::", StringComparison.Ordinal) ? name[(name.LastIndexOf("::", StringComparison.Ordinal) + 2)..] : name;
        var lower = bare.ToLowerInvariant();
        if (lower.Contains("conv", StringComparison.Ordinal)) return "convolution";
        if (lower is "attention" or "multiheadattention" or "softmax" or "_softmax" or "baddbmm" or "bmm") return "attention";
        if (lower is "linear" or "linear_onednn" or "linear_prepacked" or "addmm" or "mm" or "matmul" or "gemm" or "fusedmatmul" or "fusedgemm" or "matmulnbits") return "linear/matmul";
        if (lower.Contains("norm", StringComparison.Ordinal)) return "normalisation";
        if (lower is "copy_" or "contiguous" or "clone" or "to" or "_to_copy" or "cat" or "concat" or "empty" or "empty_like" or "zeros" or "resize_"
            or "reorder" or "reorderinput" or "reorderoutput" or "transpose" or "reshape" or "view" or "slice" or "split" or "expand" or "gather"
            or "shape" or "unsqueeze" or "squeeze" or "constantofshape" or "cast" or "upsample_nearest2d" or "resize" or "chunk" or "narrow"
            or "permute" or "flatten" or "select" or "stack" or "arange" or "where" or "_reshape_alias" or "as_strided" or "index_select")
            return "copies/other";
        return "element-wise";
    }
}
