using System.Text.Json;
using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server.Api;

/// <summary>AUTOMATIC1111 payloads → pipeline requests, and results → AUTOMATIC1111's response.</summary>
public static class RequestMapping
{
    /// <summary>Bounds that keep one request from occupying the server for hours (the pipeline refuses what does not fit in memory).</summary>
    public const int MaxSteps = 1000, MaxSide = 16384, MaxImages = 64;

    /// <summary>
    /// The longest prompt: long prompts are encoded 75 tokens at a time, so a body-sized prompt would make tens of
    /// thousands of text-encoder passes; 20,000 characters is far past any prompt a model can follow.
    /// </summary>
    public const int MaxPromptChars = 20_000;

    /// <summary>The generation request for a payload; the seed -1 becomes a random one.</summary>
    /// <exception cref="ApiException">422 naming the field, for a value out of range or a feature this server lacks.</exception>
    public static GenerationRequest ToRequest(GenerationPayload p, ServerSettings settings)
    {
        foreach (var (field, text) in new[] { ("prompt", p.Prompt), ("negative_prompt", p.NegativePrompt) })
        {
            if (text is null) throw ApiException.Invalid($"{field} must be a string, not null");
            if (text.Contains('\0', StringComparison.Ordinal)) throw ApiException.Invalid($"{field} contains a NUL character, which the PNG's parameters text cannot hold");
            if (text.Length > MaxPromptChars) throw ApiException.Invalid($"{field} is {text.Length} characters long; at most {MaxPromptChars} are accepted");
        }
        RefuseMissingFeatures(p);
        CheckLoraTags(p.Prompt);
        if (p.Seed < -1) throw ApiException.Invalid($"seed must be ≥ 0, or -1 for a random seed, got {p.Seed}");
        if (p.Steps is < 1 or > MaxSteps) throw ApiException.Invalid($"steps must be in 1..{MaxSteps}, got {p.Steps}");
        if (!(p.CfgScale >= 0 && p.CfgScale <= 100)) throw ApiException.Invalid($"cfg_scale must be in [0, 100], got {p.CfgScale}");
        if (p.Width is < 1 or > MaxSide) throw ApiException.Invalid($"width must be in 1..{MaxSide}, got {p.Width}");
        if (p.Height is < 1 or > MaxSide) throw ApiException.Invalid($"height must be in 1..{MaxSide}, got {p.Height}");
        if (p.BatchSize is < 1 or > MaxImages) throw ApiException.Invalid($"batch_size must be in 1..{MaxImages}, got {p.BatchSize}");
        if (p.NIter < 1 || (long)p.NIter * p.BatchSize > MaxImages)
            throw ApiException.Invalid($"n_iter must be ≥ 1 with batch_size × n_iter ≤ {MaxImages}, got {p.NIter} × {p.BatchSize}");
        if (p.Eta is { } eta && !(eta >= 0 && eta <= 1)) throw ApiException.Invalid($"eta must be in [0, 1], got {eta}");

        var effective = settings.With(p.OverrideSettings);
        var sampler = SamplerOf(p);
        return new GenerationRequest
        {
            Prompt = p.Prompt,
            NegativePrompt = p.NegativePrompt,
            Steps = p.Steps,
            GuidanceScale = p.CfgScale,
            Sampler = sampler.Name,
            Seed = p.Seed == -1 ? (ulong)Random.Shared.NextInt64(0, uint.MaxValue) : (ulong)p.Seed,
            Width = p.Width,
            Height = p.Height,
            NumImages = p.BatchSize * p.NIter,
            BatchSize = p.BatchSize,
            ClipSkip = effective.ClipSkipValue,
            Eta = p.Eta ?? effective.EtaDdimValue,
            // -1: only at the end (a step count no step index reaches before the last); 0: no previews.
            PreviewEvery = effective.PreviewEveryValue == -1 ? int.MaxValue : effective.PreviewEveryValue,
        };
    }

    /// <summary>The sampler named by sampler_name (or the older sampler_index) and scheduler, as AUTOMATIC1111 ≥ 1.9 reads them.</summary>
    public static SamplerInfo SamplerOf(GenerationPayload p)
    {
        var name = string.IsNullOrEmpty(p.SamplerName) ? (string.IsNullOrEmpty(p.SamplerIndex) ? "Euler" : p.SamplerIndex) : p.SamplerName;
        var schedule = string.IsNullOrEmpty(p.Scheduler) ? Samplers.Automatic : p.Scheduler;
        if (!ScheduleTypes.TryGet(schedule, out _))
            throw ApiException.Invalid($"scheduler: unknown schedule type '{schedule}' (known: {string.Join(", ", ScheduleTypes.All.Select(s => s.DisplayName))})");
        return Samplers.FromParameters(name, schedule)
            ?? throw ApiException.Invalid($"sampler_name: no sampler '{name}' with schedule type '{schedule}' (GET /sdapi/v1/samplers and /sdapi/v1/schedulers list them)");
    }

    // Accepted at AUTOMATIC1111's defaults (clients send whole default payloads), refused otherwise.
    private static void RefuseMissingFeatures(GenerationPayload p)
    {
        if (p.Styles is { Count: > 0 }) throw ApiException.Unsupported("styles", "prompt styles");
        if (p.SubseedStrength != 0) throw ApiException.Unsupported("subseed_strength", "variation seeds");
        if (p.SeedResizeFromW > 0 || p.SeedResizeFromH > 0) throw ApiException.Unsupported("seed_resize_from_w/h", "resizing the seed");
        if (p.RestoreFaces == true) throw ApiException.Unsupported("restore_faces", "face restoration");
        if (p.Tiling == true) throw ApiException.Unsupported("tiling", "tileable images");
        if (!string.IsNullOrEmpty(p.RefinerCheckpoint)) throw ApiException.Unsupported("refiner_checkpoint", "a refiner model");
        if (!string.IsNullOrEmpty(p.ScriptName)) throw ApiException.Unsupported("script_name", "scripts");
        if (p.AlwaysonScripts.Keys.FirstOrDefault(k => !k.Equals("controlnet", StringComparison.OrdinalIgnoreCase)) is { } script)
            throw ApiException.Unsupported($"alwayson_scripts.{ModelCatalog.Printable(script)}", "this extension script (controlnet is supported)");
        if (p is TextToImagePayload { EnableHr: true }) throw ApiException.Unsupported("enable_hr", "the hires. fix");
        if (p is ImageToImagePayload i2i)
        {
            if (i2i.ResizeMode is < 0 or > 1) throw ApiException.Unsupported("resize_mode", $"resize mode {i2i.ResizeMode} (0 just resize and 1 crop and resize are)");
        }
    }

    // A prompt tag names a LoRA of --lora-dir, never a file elsewhere (the pipeline would take a path); a malformed tag is refused here.
    private static void CheckLoraTags(string prompt)
    {
        IReadOnlyList<Pipeline.Adapters.LoraRequest> tags;
        try
        {
            tags = Pipeline.Adapters.LoraPromptTags.Extract(prompt).Loras;
        }
        catch (FormatException e)
        {
            throw ApiException.Invalid($"prompt: {e.Message}");
        }
        foreach (var tag in tags) ModelCatalog.CheckName(tag.PathOrName, "prompt: LoRA", "/sdapi/v1/loras");
    }

    /// <summary>
    /// Checks img2img's fields, init_images[0] and the inpainting mask from their headers (nothing is decoded: requests
    /// waiting in the queue hold compressed bytes, not pixels); the returned function, run when the job's turn comes,
    /// decodes and resizes them into an <see cref="ImageToImageRequest"/>, or with a mask an <see cref="InpaintRequest"/>.
    /// </summary>
    public static Func<GenerationRequest> ToImageToImage(ImageToImagePayload p, GenerationRequest request)
    {
        if (p.InitImages is not { Count: > 0 } images) throw ApiException.Invalid("init_images: one base64 image is required");
        if (images.Count > 1) throw ApiException.Unsupported("init_images", "more than one init image");
        if (!(p.DenoisingStrength > 0 && p.DenoisingStrength <= 1)) throw ApiException.Invalid($"denoising_strength must be in (0, 1], got {p.DenoisingStrength}");
        const string field = "init_images[0]";
        var bytes = DecodeBase64(images[0] ?? "", field);
        CheckImage(bytes, field);
        var inpaint = string.IsNullOrEmpty(p.Mask) ? null : Inpainting.Check(p);
        return () =>
        {
            var init = DecodeImage(bytes, field);
            // resize_mode 0 ("Just resize") stretches to the requested size; 1 ("Crop and resize") is the pipeline's own resize-and-crop.
            if (p.ResizeMode == 0 && request.Width is int w && request.Height is int h && (init.Width != w || init.Height != h)) init = init.ToRgb().Resize(w, h);
            return inpaint is null ? new ImageToImageRequest(request, init) { Strength = p.DenoisingStrength } : inpaint(request, init);
        };
    }

    /// <summary>Checks an image's header: a format we read and at most <see cref="ImageDecoder.DefaultMaxPixels"/> pixels.</summary>
    public static void CheckImage(byte[] bytes, string field)
    {
        var info = Image(() => ImageDecoder.ReadInfo(bytes, field));
        if (info.PixelCount > ImageDecoder.DefaultMaxPixels)
            throw ApiException.Invalid($"{field} is {info.Width}x{info.Height}, over the limit of {ImageDecoder.DefaultMaxPixels} pixels");
    }

    /// <summary>Decodes an image checked by <see cref="CheckImage"/>; a broken body is a 422 naming the field.</summary>
    public static RgbImage DecodeImage(byte[] bytes, string field, bool keepAlpha = false) => Image(() => ImageDecoder.Decode(bytes, field, keepAlpha));

    private static T Image<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ImageLoadException e)
        {
            throw ApiException.Invalid(e.Message.ReplaceLineEndings(" "));
        }
    }

    /// <summary>Base64 bytes, or a data: URI's (what a browser's FileReader makes).</summary>
    public static byte[] DecodeBase64(string text, string field)
    {
        var comma = text.StartsWith("data:", StringComparison.Ordinal) ? text.IndexOf(',', StringComparison.Ordinal) : -1;
        try
        {
            return Convert.FromBase64String(comma >= 0 ? text[(comma + 1)..] : text);
        }
        catch (FormatException)
        {
            throw ApiException.Invalid($"{field} is not valid base64");
        }
    }

    /// <summary>AUTOMATIC1111's response: base64 PNGs with the parameters chunk, the request as run, and the info JSON string.</summary>
    public static GenerationResponse ToResponse(GenerationPayload p, GenerationResult result, string modelTitle, DateTime started)
    {
        var first = result.Parameters[0];
        // The echo shows the size the request ran at, not the null that meant "the model's".
        p.Width = first.Width;
        p.Height = first.Height;
        var images = p.SendImages
            ? result.Images.Select((image, i) => Convert.ToBase64String(image.EncodePng([result.Parameters[i].ToPngText()]))).ToList()
            : [];
        var infotexts = new JsonArray(result.Parameters.Select(x => (JsonNode?)x.Format()).ToArray());
        var info = new JsonObject
        {
            ["prompt"] = first.Prompt,
            ["all_prompts"] = Repeat(first.Prompt, result.Parameters.Count),
            ["negative_prompt"] = first.NegativePrompt,
            ["all_negative_prompts"] = Repeat(first.NegativePrompt, result.Parameters.Count),
            ["seed"] = first.Seed,
            ["all_seeds"] = new JsonArray(result.Parameters.Select(x => (JsonNode?)x.Seed).ToArray()),
            ["subseed"] = p.Subseed,
            ["all_subseeds"] = new JsonArray(result.Parameters.Select(x => (JsonNode?)p.Subseed).ToArray()),
            ["subseed_strength"] = p.SubseedStrength,
            ["width"] = first.Width,
            ["height"] = first.Height,
            ["sampler_name"] = first.Sampler,
            ["scheduler"] = first.ScheduleType,
            ["cfg_scale"] = first.CfgScale,
            ["steps"] = first.Steps,
            ["batch_size"] = p.BatchSize,
            ["restore_faces"] = false,
            ["face_restoration_model"] = null,
            ["sd_model_name"] = first.Model,
            ["sd_model_hash"] = null,
            ["sd_vae_name"] = null,
            ["sd_vae_hash"] = null,
            ["seed_resize_from_w"] = p.SeedResizeFromW,
            ["seed_resize_from_h"] = p.SeedResizeFromH,
            ["denoising_strength"] = first.Strength,
            ["extra_generation_params"] = new JsonObject([.. first.Extra.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
            ["index_of_first_image"] = 0,
            ["infotexts"] = infotexts,
            ["styles"] = new JsonArray(),
            ["job_timestamp"] = started.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture),
            ["clip_skip"] = first.ClipSkip ?? 1,
            ["is_using_inpainting_conditioning"] = false,
            ["version"] = $"LatentDiffusion.NET {typeof(RequestMapping).Assembly.GetName().Version?.ToString(3)}",
            ["sd_model_checkpoint"] = modelTitle,
            // What the run ignored (a LoRA or embedding not found, LoRA keys that map to nothing): A1111's comments, one per line.
            ["comments"] = string.Concat(result.Warnings.Select(w => w.ReplaceLineEndings(" ") + "\n")),
        };
        return new GenerationResponse(images, JsonSerializer.SerializeToElement(p, p.GetType(), ApiJson.Options), info.ToJsonString(ApiJson.Options));
    }

    private static JsonArray Repeat(string text, int count) => new(Enumerable.Repeat(text, count).Select(t => (JsonNode?)t).ToArray());

    /// <summary>POST /sdapi/v1/png-info: the parameters text, the other text chunks, and the parameters parsed into AUTOMATIC1111's keys.</summary>
    public static JsonObject PngInfo(byte[] png)
    {
        IReadOnlyList<PngText> texts;
        try
        {
            texts = PngReader.ReadText(png);
        }
        catch (InvalidDataException e)
        {
            throw ApiException.Invalid($"image: not a PNG with readable text chunks ({e.Message.ReplaceLineEndings(" ")})");
        }
        var items = new JsonObject();
        foreach (var t in texts.Where(t => t.Keyword != PngText.ParametersKeyword)) items[t.Keyword] = t.Text;
        var text = texts.Find(PngText.ParametersKeyword);
        var parameters = new JsonObject();
        if (text is not null && GenerationParameters.TryParse(text, out var g))
        {
            parameters["Prompt"] = g.Prompt;
            parameters["Negative prompt"] = g.NegativePrompt;
            parameters["Steps"] = g.Steps.ToString(System.Globalization.CultureInfo.InvariantCulture);
            parameters["Sampler"] = g.Sampler;
            if (g.ScheduleType is not null) parameters["Schedule type"] = g.ScheduleType;
            parameters["CFG scale"] = g.CfgScale.ToString(System.Globalization.CultureInfo.InvariantCulture);
            parameters["Seed"] = g.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture);
            parameters["Size-1"] = g.Width.ToString(System.Globalization.CultureInfo.InvariantCulture);
            parameters["Size-2"] = g.Height.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (g.Model is not null) parameters["Model"] = g.Model;
            if (g.Strength is { } s) parameters["Denoising strength"] = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (g.ClipSkip is { } c) parameters["Clip skip"] = c.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (g.Eta is { } e) parameters["Eta"] = e.ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var (k, v) in g.Extra) parameters[k] = v;
        }
        return new JsonObject { ["info"] = text ?? "", ["items"] = items, ["parameters"] = parameters };
    }
}
