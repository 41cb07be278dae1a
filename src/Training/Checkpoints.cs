using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Training;

/// <summary>The small JSON beside a checkpoint's tensors: where the run stood.</summary>
public sealed record CheckpointState
{
    public const int CurrentFormat = 1;

    [JsonPropertyName("format")] public int Format { get; init; } = CurrentFormat;
    [JsonPropertyName("step")] public long Step { get; init; }
    [JsonPropertyName("max_steps")] public long MaxSteps { get; init; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; }
    [JsonPropertyName("seed")] public ulong Seed { get; init; }
    /// <summary>The number of data-parallel ranks (1 in checkpoints written before data-parallel training existed).</summary>
    [JsonPropertyName("world_size")] public int WorldSize { get; init; } = 1;
    [JsonPropertyName("dataset_count")] public int DatasetCount { get; init; }
    [JsonPropertyName("epoch")] public long Epoch { get; init; }
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; }
    [JsonPropertyName("has_ema")] public bool HasEma { get; init; }
    [JsonPropertyName("has_discriminator")] public bool HasDiscriminator { get; init; }
    /// <summary>kohya's enable_bucket for the run's data (null in checkpoints written before it was recorded: then not checked on resume).</summary>
    [JsonPropertyName("enable_bucket")] public bool? EnableBucket { get; init; }
    /// <summary>With <see cref="EnableBucket"/>, the settings the buckets were made with.</summary>
    [JsonPropertyName("bucketing")] public Data.BucketOptions? Bucketing { get; init; }
    [JsonPropertyName("elapsed_seconds")] public double ElapsedSeconds { get; init; }
    [JsonPropertyName("written_utc")] public DateTime WrittenUtc { get; init; }
}

/// <summary>
/// checkpoints/step-000500/ = state.safetensors (model.*, ema.*, optimizer.*, rng.training, and with a
/// discriminator discriminator.* and discriminator_optimizer.*) +
/// trainer_state.json. A checkpoint is written into a hidden temporary folder and renamed into place
/// only once complete, so a kill at any moment leaves either the previous checkpoints or the new one,
/// never a half-written one; only the newest <c>keep</c> are kept.
/// </summary>
public sealed class CheckpointStore(string directory)
{
    public const string TensorsFile = "state.safetensors";
    public const string StateFile = "trainer_state.json";
    private const string Prefix = "step-";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string Directory { get; } = directory;

    public static string Name(long step) => Prefix + step.ToString("D6", CultureInfo.InvariantCulture);

    /// <summary>Complete checkpoints, oldest first.</summary>
    public IReadOnlyList<(long Step, string Path)> List()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        var found = new List<(long, string)>();
        foreach (var dir in System.IO.Directory.GetDirectories(Directory, Prefix + "*"))
        {
            var name = Path.GetFileName(dir);
            if (long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var step)
                && File.Exists(Path.Combine(dir, StateFile)) && File.Exists(Path.Combine(dir, TensorsFile)))
                found.Add((step, dir));
        }
        return found.OrderBy(c => c.Item1).ToList();
    }

    public (long Step, string Path)? Latest() => List() is { Count: > 0 } all ? all[^1] : null;

    public string Write(CheckpointState state, IEnumerable<KeyValuePair<string, Tensor>> tensors, int keep)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var final = Path.Combine(Directory, Name(state.Step));
        // The old checkpoint is deleted before the rename: never delete through a link, nor a file that only bears its name.
        if (File.Exists(final) || new DirectoryInfo(final).LinkTarget is not null)
            throw new IOException($"{final}: exists and is not a checkpoint folder (a file, a link or a device); refusing to replace it");
        var temporary = Path.Combine(Directory, $".{Name(state.Step)}.{Guid.NewGuid():N}.tmp");
        System.IO.Directory.CreateDirectory(temporary);
        try
        {
            SafeTensorsFile.Save(Path.Combine(temporary, TensorsFile), tensors,
                new Dictionary<string, string> { ["step"] = state.Step.ToString(CultureInfo.InvariantCulture) });
            AtomicFile.WriteAllText(Path.Combine(temporary, StateFile), JsonSerializer.Serialize(state, Json) + "\n");
            if (System.IO.Directory.Exists(final)) System.IO.Directory.Delete(final, recursive: true);
            System.IO.Directory.Move(temporary, final);
        }
        catch
        {
            try { System.IO.Directory.Delete(temporary, recursive: true); } catch (IOException) { }
            throw;
        }
        Prune(keep);
        return final;
    }

    public static CheckpointState ReadState(string checkpoint)
    {
        var path = Path.Combine(checkpoint, StateFile);
        try
        {
            var state = JsonSerializer.Deserialize<CheckpointState>(Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "trainer state"), Json)
                ?? throw new InvalidDataException($"{path}: empty");
            if (state.Format != CheckpointState.CurrentFormat)
                throw new InvalidDataException($"{path}: checkpoint format {state.Format} is not supported (expected {CheckpointState.CurrentFormat})");
            return state;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid trainer state ({e.Message})", e);
        }
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints, and temporary folders a kill left behind.</summary>
    private void Prune(int keep)
    {
        var all = List();
        foreach (var (_, path) in all.Take(Math.Max(0, all.Count - keep))) System.IO.Directory.Delete(path, recursive: true);
        foreach (var stale in System.IO.Directory.GetDirectories(Directory, "." + Prefix + "*.tmp"))
        {
            try { System.IO.Directory.Delete(stale, recursive: true); } catch (IOException) { }
        }
    }
}
