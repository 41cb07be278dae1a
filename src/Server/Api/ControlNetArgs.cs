using System.Text.Json;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Preprocessors;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server.Api;

/// <summary>
/// AUTOMATIC1111's ControlNet extension (sd-webui-controlnet) through the API: <c>alwayson_scripts.controlnet.args</c>, one
/// object per unit with its field names (enabled, image or input_image, module, model, weight, guidance_start/end,
/// threshold_a/b, control_mode, resize_mode, pixel_perfect, processor_res, …). What the pipeline has (the canny module or a
/// ready control image, Balanced control mode, the three resize modes) is mapped; anything else is refused.
/// </summary>
public static class ControlNetArgs
{
    /// <summary>The modules (A1111's preprocessors) this server runs: "none" takes the image as the control image.</summary>
    public static IReadOnlyList<string> Modules { get; } = ["none", "canny"];

    // Fields a unit may carry that change nothing here: UI state and memory hints of the extension.
    private static readonly HashSet<string> Inert = new(StringComparer.Ordinal)
    {
        "enabled", "image", "input_image", "module", "model", "weight", "guidance_start", "guidance_end", "threshold_a", "threshold_b",
        "control_mode", "resize_mode", "pixel_perfect", "processor_res", "low_vram", "lowvram", "guess_mode", "is_ui", "hr_option",
        "save_detected_map", "input_mode", "batch_images", "output_dir", "loopback", "mask", "mask_image", "image_fidelity",
    };

    /// <summary>A unit checked from the request (its image from the header only), and made into a <see cref="ControlNetUnit"/> when the job runs.</summary>
    public sealed record Unit(ControlNetEntry Model, byte[] Image, string Field, IControlPreprocessor? Preprocessor, double Weight, double Start, double End, ControlResizeMode Resize);

    /// <summary>The enabled units of <c>alwayson_scripts.controlnet</c> (empty without it).</summary>
    /// <exception cref="ApiException">422 with one line naming the unit's field.</exception>
    public static IReadOnlyList<Unit> Parse(GenerationPayload p, AdapterCatalog catalog)
    {
        var script = p.AlwaysonScripts.FirstOrDefault(s => s.Key.Equals("controlnet", StringComparison.OrdinalIgnoreCase));
        if (script.Key is null) return [];
        var where = $"alwayson_scripts.{script.Key}";
        if (script.Value.ValueKind != JsonValueKind.Object || !script.Value.TryGetProperty("args", out var args) || args.ValueKind != JsonValueKind.Array)
            throw ApiException.Invalid($"{where} must be an object {{\"args\": [unit, …]}}");
        var units = new List<Unit>();
        var index = 0;
        foreach (var unit in args.EnumerateArray())
        {
            var field = $"{where}.args[{index++}]";
            if (unit.ValueKind != JsonValueKind.Object) throw ApiException.Invalid($"{field} must be an object (the extension's positional unit lists are not supported)");
            if (!Bool(unit, "enabled", field, true)) continue;
            units.Add(ParseUnit(unit, field, catalog));
        }
        return units;
    }

    private static Unit ParseUnit(JsonElement unit, string field, AdapterCatalog catalog)
    {
        foreach (var property in unit.EnumerateObject())
            if (!Inert.Contains(property.Name) && property.Value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False)
                && !(property.Value.ValueKind == JsonValueKind.String && property.Value.GetString() == ""))
                throw ApiException.Unsupported($"{field}.{property.Name}", $"the ControlNet field {property.Name}");
        foreach (var name in new[] { "mask", "mask_image" })
            if (String(unit, name, field) is { Length: > 0 }) throw ApiException.Unsupported($"{field}.{name}", "a ControlNet mask");
        if (Bool(unit, "guess_mode", field, false)) throw ApiException.Unsupported($"{field}.guess_mode", "guess mode per unit (control_mode \"ControlNet is more important\")");

        var module = String(unit, "module", field) ?? "none";
        if (!Modules.Contains(module))
            throw ApiException.Invalid($"{field}.module: '{ModelCatalog.Printable(module)}' is not supported (GET /controlnet/module_list: {string.Join(", ", Modules)})");
        var modelName = String(unit, "model", field);
        if (modelName is null or "" or "None") throw ApiException.Invalid($"{field}.model: a ControlNet model from GET /controlnet/model_list is required");
        var model = catalog.FindControlNet(modelName, $"{field}.model");

        var imageField = unit.TryGetProperty("image", out var img) && img.ValueKind != JsonValueKind.Null ? "image" : "input_image";
        var image = imageField == "image" ? img : unit.TryGetProperty("input_image", out var input) ? input : default;
        // The extension also takes {"image": …, "mask": …}.
        if (image.ValueKind == JsonValueKind.Object)
        {
            if (image.TryGetProperty("mask", out var mask) && mask.ValueKind == JsonValueKind.String && mask.GetString() is { Length: > 0 })
                throw ApiException.Unsupported($"{field}.{imageField}.mask", "a ControlNet mask");
            image = image.TryGetProperty("image", out var inner) ? inner : default;
            imageField += ".image";
        }
        if (image.ValueKind != JsonValueKind.String || image.GetString() is not { Length: > 0 } base64)
            throw ApiException.Invalid($"{field}.image: a base64 control image is required");
        var bytes = RequestMapping.DecodeBase64(base64, $"{field}.{imageField}");
        RequestMapping.CheckImage(bytes, $"{field}.{imageField}");

        var weight = Number(unit, "weight", field, 1, 0, 10);
        var start = Number(unit, "guidance_start", field, 0, 0, 1);
        var end = Number(unit, "guidance_end", field, 1, 0, 1);
        if (start >= end) throw ApiException.Invalid($"{field}: guidance_start ({start}) must be below guidance_end ({end})");
        IControlPreprocessor? preprocessor = null;
        if (module == "canny")
        {
            // -1 is the extension's "the module's default".
            var low = Number(unit, "threshold_a", field, -1, -1, 255);
            var high = Number(unit, "threshold_b", field, -1, -1, 255);
            preprocessor = new CannyPreprocessor(low < 0 ? CannyDetector.DefaultLow : low, high < 0 ? CannyDetector.DefaultHigh : high);
        }
        var controlMode = Choice(unit, "control_mode", field, ["Balanced", "My prompt is more important", "ControlNet is more important"], 0);
        if (controlMode != 0) throw ApiException.Unsupported($"{field}.control_mode", "control modes other than Balanced");
        // The extension's default is Crop and Resize (its ResizeMode.INNER_FIT); 0, 1, 2 are its int_value().
        var resize = (ControlResizeMode)Choice(unit, "resize_mode", field, [.. ControlResizeModes.Names], (int)ControlResizeMode.CropAndResize);
        return new Unit(model, bytes, $"{field}.{imageField}", preprocessor, weight, start, end, resize);
    }

    /// <summary>The pipeline's units, when the job's turn comes: images decoded, ControlNets loaded (and kept) for the loaded model.</summary>
    public static IReadOnlyList<ControlNetUnit> Build(IReadOnlyList<Unit> units, Func<string, IControlNet> load, int width, int height) =>
        [.. units.Select(u =>
        {
            var image = RequestMapping.DecodeImage(u.Image, u.Field).ToRgb();
            return new ControlNetUnit(load(u.Model.Path), image)
            {
                Scale = u.Weight, GuidanceStart = u.Start, GuidanceEnd = u.End, Preprocessor = u.Preprocessor,
                ResizeMode = u.Resize,
            };
        })];

    private static bool Bool(JsonElement unit, string name, string field, bool absent) =>
        !unit.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? absent
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : throw ApiException.Invalid($"{field}.{name} must be true or false");

    private static string? String(JsonElement unit, string name, string field) =>
        !unit.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString() : throw ApiException.Invalid($"{field}.{name} must be a string");

    private static double Number(JsonElement unit, string name, string field, double absent, double min, double max)
    {
        if (!unit.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return absent;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d >= min && d <= max ? d
            : throw ApiException.Invalid($"{field}.{name} must be a number in [{min}, {max}], got {ModelCatalog.Printable(v.GetRawText())}");
    }

    // The extension takes its enums by index or by name.
    private static int Choice(JsonElement unit, string name, string field, string[] names, int absent)
    {
        if (!unit.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return absent;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i >= 0 && i < names.Length) return i;
        if (v.ValueKind == JsonValueKind.String && Array.IndexOf(names, v.GetString()) is >= 0 and var at) return at;
        throw ApiException.Invalid($"{field}.{name} must be one of {string.Join(", ", names.Select((n, k) => $"{k} \"{n}\""))}, got {ModelCatalog.Printable(v.GetRawText())}");
    }
}
