using System.Text.Json;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Reads tests/fixtures/torch/optim_reference.json (written by make_optim_reference.py with PyTorch 1.13).</summary>
internal static class OptimReference
{
    private static readonly Lazy<JsonElement> Root = new(() =>
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "torch", "optim_reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    });

    public static JsonElement Get(string name) => Root.Value.GetProperty(name);

    public static float[] Floats(JsonElement e) => e.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();

    public static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    public static long[] Longs(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt64()).ToArray();

    /// <summary>The regression problem: initial weight [3, 4] and bias [3], data x [8, 4] and targets y [8, 3].</summary>
    public static (Tensor W, Tensor B, Tensor X, Tensor Y) Problem()
    {
        var p = Get("problem");
        var w = Tensor.From(Floats(p.GetProperty("weight")), Longs(p.GetProperty("weight_shape")));
        var b = Tensor.From(Floats(p.GetProperty("bias")), w.Shape[0]);
        var x = Tensor.From(Floats(p.GetProperty("x")), Longs(p.GetProperty("x_shape")));
        var y = Tensor.From(Floats(p.GetProperty("y")), Longs(p.GetProperty("y_shape")));
        return (w, b, x, y);
    }

}
