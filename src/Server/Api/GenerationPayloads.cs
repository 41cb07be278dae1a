using System.Text.Json;
using System.Text.Json.Serialization;

namespace LatentDiffusion.Server.Api;

/// <summary>
/// The fields AUTOMATIC1111's txt2img and img2img requests share, with its names (snake_case on the wire)
/// and its API defaults, except <see cref="Width"/>/<see cref="Height"/>: absent, they take the loaded
/// model's own size (512 for Stable Diffusion 1.x, AUTOMATIC1111's default). Fields this server cannot honour
/// are accepted at their defaults and refused otherwise (<see cref="RequestMapping"/>), so that a client's
/// full default payload works and a request for a missing feature fails instead of being silently ignored.
/// </summary>
public class GenerationPayload
{
    public string Prompt { get; set; } = "";
    public string NegativePrompt { get; set; } = "";
    public List<string> Styles { get; set; } = [];
    public long Seed { get; set; } = -1;
    public long Subseed { get; set; } = -1;
    public double SubseedStrength { get; set; }
    public int SeedResizeFromH { get; set; } = -1;
    public int SeedResizeFromW { get; set; } = -1;
    public string? SamplerName { get; set; }
    public string? Scheduler { get; set; }
    public int BatchSize { get; set; } = 1;
    public int NIter { get; set; } = 1;
    public int Steps { get; set; } = 50;
    public double CfgScale { get; set; } = 7.0;
    public int? Width { get; set; }
    public int? Height { get; set; }
    public bool? RestoreFaces { get; set; }
    public bool? Tiling { get; set; }
    public bool DoNotSaveSamples { get; set; }
    public bool DoNotSaveGrid { get; set; }
    public double? Eta { get; set; }
    public Dictionary<string, JsonElement>? OverrideSettings { get; set; }
    public bool OverrideSettingsRestoreAfterwards { get; set; } = true;
    public string? RefinerCheckpoint { get; set; }
    public string? SamplerIndex { get; set; } = "Euler";
    public string? ScriptName { get; set; }
    public List<JsonElement> ScriptArgs { get; set; } = [];
    public bool SendImages { get; set; } = true;
    public bool SaveImages { get; set; }
    public Dictionary<string, JsonElement> AlwaysonScripts { get; set; } = [];
}

/// <summary>POST /sdapi/v1/txt2img (AUTOMATIC1111's StableDiffusionProcessingTxt2Img fields).</summary>
public sealed class TextToImagePayload : GenerationPayload
{
    public bool EnableHr { get; set; }
    public double? DenoisingStrength { get; set; }
    public double HrScale { get; set; } = 2.0;
}

/// <summary>POST /sdapi/v1/img2img (AUTOMATIC1111's StableDiffusionProcessingImg2Img fields).</summary>
public sealed class ImageToImagePayload : GenerationPayload
{
    public List<string>? InitImages { get; set; }
    public int ResizeMode { get; set; }
    public double DenoisingStrength { get; set; } = 0.75;
    public string? Mask { get; set; }
    public int MaskBlur { get; set; } = 4;
    public int InpaintingFill { get; set; }
    public bool InpaintFullRes { get; set; } = true;
    public int InpaintFullResPadding { get; set; }
    public int InpaintingMaskInvert { get; set; }
    public bool IncludeInitImages { get; set; }
}

/// <summary>The answer to txt2img and img2img: base64 PNGs, the request as run, and AUTOMATIC1111's info JSON as a string.</summary>
public sealed record GenerationResponse(List<string> Images, JsonElement Parameters, string Info);

/// <summary>POST /sdapi/v1/png-info.</summary>
public sealed class PngInfoPayload
{
    public string? Image { get; set; }
}

/// <summary>The JSON options: AUTOMATIC1111's names (snake_case, nulls written as AUTOMATIC1111 writes them).</summary>
public static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.Strict,
        MaxDepth = 32,
        // "DPM++ 2M" and quotes as they are, not \u002B escapes: the API answers JSON, never HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
