using System.Text.Json;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Server.Api;

/// <summary>
/// The AUTOMATIC1111 options this server has (GET/POST /sdapi/v1/options, a request's override_settings),
/// with AUTOMATIC1111's keys and defaults. sd_model_checkpoint lives in the <see cref="JobQueue"/>, which loads it.
/// </summary>
public sealed class ServerSettings
{
    public const string Checkpoint = "sd_model_checkpoint", ClipSkip = "CLIP_stop_at_last_layers", PreviewEvery = "show_progress_every_n_steps", EtaDdim = "eta_ddim";

    /// <summary>Every key a client may set, sd_model_checkpoint included.</summary>
    public static IReadOnlyList<string> Keys { get; } = [Checkpoint, ClipSkip, PreviewEvery, EtaDdim];

    private readonly Lock sync = new();

    /// <summary>AUTOMATIC1111's "Clip skip" (1 = the last layer).</summary>
    public int ClipSkipValue { get; private set; } = 1;

    /// <summary>Steps between live previews; -1: only at the end; 0: none (AUTOMATIC1111's default is 10).</summary>
    public int PreviewEveryValue { get; private set; } = 10;

    /// <summary>η for DDIM-like samplers when a request has no eta.</summary>
    public double EtaDdimValue { get; private set; }

    /// <summary>These settings with <paramref name="overrides"/> applied (a request's override_settings); sd_model_checkpoint is skipped.</summary>
    public ServerSettings With(IReadOnlyDictionary<string, JsonElement>? overrides)
    {
        var copy = new ServerSettings();
        lock (sync)
        {
            copy.ClipSkipValue = ClipSkipValue;
            copy.PreviewEveryValue = PreviewEveryValue;
            copy.EtaDdimValue = EtaDdimValue;
        }
        if (overrides is not null) copy.Apply(overrides, "override_settings");
        return copy;
    }

    /// <summary>Checks every key and value first, then sets them all (nothing is half-applied); sd_model_checkpoint is skipped.</summary>
    /// <exception cref="ApiException">422 naming an unknown key or a value out of range.</exception>
    public void Apply(IReadOnlyDictionary<string, JsonElement> values, string where)
    {
        int? clipSkip = null, previewEvery = null;
        double? eta = null;
        foreach (var (key, value) in values)
        {
            switch (key)
            {
                case Checkpoint: break;
                case ClipSkip: clipSkip = Int(value, where, key, 1, 12); break;
                case PreviewEvery: previewEvery = Int(value, where, key, -1, 1000); break;
                case EtaDdim: eta = Number(value, where, key, 0, 1); break;
                default: throw ApiException.Invalid($"{where}: unknown option '{key}' (this server has: {string.Join(", ", Keys)})");
            }
        }
        lock (sync)
        {
            if (clipSkip is { } c) ClipSkipValue = c;
            if (previewEvery is { } p) PreviewEveryValue = p;
            if (eta is { } e) EtaDdimValue = e;
        }
    }

    /// <summary>The options object of GET /sdapi/v1/options.</summary>
    public JsonObject ToJson(string checkpoint)
    {
        lock (sync)
        {
            return new JsonObject
            {
                [Checkpoint] = checkpoint,
                [ClipSkip] = ClipSkipValue,
                [PreviewEvery] = PreviewEveryValue,
                [EtaDdim] = EtaDdimValue,
            };
        }
    }

    private static int Int(JsonElement value, string where, string key, int min, int max) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var i) && i >= min && i <= max ? i
            : throw ApiException.Invalid($"{where}: {key} must be an integer in {min}..{max}, got {value.GetRawText()}");

    private static double Number(JsonElement value, string where, string key, double min, double max) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && d >= min && d <= max ? d
            : throw ApiException.Invalid($"{where}: {key} must be a number in [{min}, {max}], got {value.GetRawText()}");
}
