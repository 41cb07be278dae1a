using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Training;

/// <summary>
/// metrics.jsonl: one JSON object per line ({"step":100,"loss":0.05,"lr":1e-4,"grad_norm":0.8,
/// "it_per_s":5.1,"elapsed_s":19.6}), flushed per line so that a killed run keeps its history. On
/// resume, lines after the checkpoint's step are dropped: those steps are about to be redone.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter writer;

    public string FilePath { get; }

    public MetricsLog(string path, long? resumeStep)
    {
        FilePath = path;
        if (resumeStep is { } step && File.Exists(path)) TruncateAfter(path, step);
        // A fresh run empties the log through the one writer (a link is written through, a device refused), never deletes it.
        else if (resumeStep is null && File.Exists(path)) Torch.AtomicFile.WriteAllText(path, "");
        writer = new StreamWriter(Torch.AtomicFile.OpenAppend(path), new UTF8Encoding(false)) { AutoFlush = true };
    }

    public void Write(IEnumerable<KeyValuePair<string, double>> values)
    {
        var line = new StringBuilder("{");
        var first = true;
        foreach (var (key, value) in values)
        {
            if (!first) line.Append(',');
            first = false;
            line.Append(JsonSerializer.Serialize(key)).Append(':');
            // JSON has no NaN/Infinity: a diverged loss is written as null rather than breaking the file.
            line.Append(double.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : "null");
        }
        writer.WriteLine(line.Append('}').ToString());
    }

    private static void TruncateAfter(string path, long step)
    {
        var kept = File.ReadLines(path).Where(line =>
        {
            try
            {
                return JsonNode.Parse(line)?["step"]?.GetValue<long>() is { } s && s <= step;
            }
            catch (JsonException)
            {
                return false; // a line cut short by a kill
            }
        }).ToList();
        Torch.AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join('\n', kept) + "\n");
    }

    public void Dispose() => writer.Dispose();
}
