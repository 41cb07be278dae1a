using System.Text.Json;
using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace LatentDiffusion.Server.Api;

/// <summary>The AUTOMATIC1111-compatible endpoints (/sdapi/v1/…), the web page and the OpenAPI document.</summary>
internal sealed partial class Endpoints(JobQueue queue, ServerSettings settings, AdapterCatalog adapters)
{
    private volatile EncodedPreview? lastPreview;
    private readonly Gallery gallery = new();

    private sealed record EncodedPreview(RgbImage Image, string Base64);

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Resource("index.html", "text/html; charset=utf-8"));
        app.MapGet("/openapi.json", () => Resource("openapi.json", "application/json"));
        app.MapPost("/sdapi/v1/txt2img", context => Generate<TextToImagePayload>(context, "txt2img", p =>
        {
            var request = RequestMapping.ToRequest(p, settings);
            return () => request;
        }));
        app.MapPost("/sdapi/v1/img2img", context =>
            Generate<ImageToImagePayload>(context, "img2img", p => RequestMapping.ToImageToImage(p, RequestMapping.ToRequest(p, settings))));
        app.MapGet("/sdapi/v1/progress", Progress);
        app.MapPost("/sdapi/v1/interrupt", () =>
        {
            queue.Interrupt();
            return Json(new JsonObject());
        });
        app.MapGet("/sdapi/v1/samplers", Samplers);
        app.MapGet("/sdapi/v1/schedulers", Schedulers);
        app.MapGet("/sdapi/v1/sd-models", Models);
        MapAdapters(app);
        app.MapGet("/sdapi/v1/options", () => Json(settings.ToJson(queue.Model.Title)));
        app.MapPost("/sdapi/v1/options", (Func<HttpContext, Task<IResult>>)SetOptions);
        app.MapPost("/sdapi/v1/png-info", (Func<HttpContext, Task<IResult>>)PngInfo);
        // Not AUTOMATIC1111's: the page's gallery of the images made since the server started.
        app.MapGet("/ldm/v1/gallery", () => Json(gallery.ToJson()));
    }

    // txt2img and img2img: the payload is checked before the job waits for its turn (a bad request is refused at once);
    // what `prepare` returns builds the request when the turn comes (img2img decodes its image only then), and the
    // answer is made on the job's thread.
    private async Task Generate<T>(HttpContext context, string name, Func<T, Func<GenerationRequest>> prepare) where T : GenerationPayload
    {
        var payload = await ReadJson<T>(context).ConfigureAwait(false);
        var build = prepare(payload);
        var controls = ControlNetArgs.Parse(payload, adapters);
        var started = DateTime.Now;
        // POST /sdapi/v1/interrupt ends the job early and it answers what it made (A1111); a client that disconnects cancels it
        var response = await queue.RunAsync(name, ModelOverride(payload), (pipe, progress, cancellation, interrupt) =>
        {
            var request = build();
            if (pipe.IsInpaintingModel && request is not InpaintRequest)
                throw ApiException.Invalid($"{queue.Model.Title} is an inpainting model (9 input channels): use img2img with an init image and a mask");
            if (controls.Count > 0)
            {
                var (width, height) = pipe.OutputSize(request, (request as ImageToImageRequest)?.InitImage ?? (request as InpaintRequest)?.InitImage);
                request = request with { ControlNets = ControlNetArgs.Build(controls, queue.ControlNet, width, height) };
            }
            using var result = request switch
            {
                InpaintRequest inpaint => pipe.Inpaint(inpaint, progress, cancellation, interrupt: interrupt),
                ImageToImageRequest image => pipe.ImageToImage(image, progress, cancellation, interrupt: interrupt),
                _ => pipe.TextToImage(request, progress, cancellation, interrupt: interrupt),
            };
            var answer = RequestMapping.ToResponse(payload, result, queue.Model.Title, started);
            gallery.Add(answer.Images, [.. result.Parameters.Select(p => p.Format())], [.. result.Parameters.Select(p => p.Seed)]);
            return answer;
        }, context.RequestAborted).ConfigureAwait(false);
        await context.Response.WriteAsJsonAsync(response, ApiJson.Options, context.RequestAborted).ConfigureAwait(false);
    }

    // override_settings.sd_model_checkpoint runs the request on that model (which stays loaded).
    private ModelEntry? ModelOverride(GenerationPayload payload) =>
        payload.OverrideSettings?.TryGetValue(ServerSettings.Checkpoint, out var name) == true ? queue.Catalog.Find(CheckpointName(name, "override_settings")) : null;

    private static string CheckpointName(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw ApiException.Invalid($"{where}: {ServerSettings.Checkpoint} must be a string");

    private IResult Progress(HttpContext context)
    {
        var p = queue.Progress();
        var fraction = p.Steps > 0 ? Math.Clamp((double)p.Step / p.Steps, 0, 1) : 0;
        var eta = fraction > 0 ? p.Elapsed.TotalSeconds / fraction - p.Elapsed.TotalSeconds : 0;
        var skipImage = context.Request.Query["skip_current_image"] is [var skip] && bool.TryParse(skip, out var s) && s;
        return Json(new JsonObject
        {
            ["progress"] = fraction,
            ["eta_relative"] = eta,
            ["state"] = new JsonObject
            {
                ["skipped"] = false,
                ["interrupted"] = p.Interrupted,
                ["stopping_generation"] = false,
                ["job"] = p.Started is null ? "" : "generate",
                ["job_count"] = p.JobCount,
                ["job_timestamp"] = (p.Started ?? DateTime.Now).ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture),
                ["job_no"] = 0,
                ["sampling_step"] = p.Step,
                ["sampling_steps"] = p.Steps,
            },
            ["current_image"] = skipImage ? null : PreviewBase64(p.Preview),
            ["textinfo"] = null,
        });
    }

    // Polled several times a second: the preview is encoded once, not at every poll.
    private string? PreviewBase64(RgbImage? preview)
    {
        if (preview is null) return null;
        if (lastPreview is { } cached && ReferenceEquals(cached.Image, preview)) return cached.Base64;
        var encoded = new EncodedPreview(preview, Convert.ToBase64String(preview.EncodePng()));
        lastPreview = encoded;
        return encoded.Base64;
    }

    private static IResult Samplers() => Json(new JsonArray(Pipeline.Schedulers.Samplers.All
        .GroupBy(s => s.DisplayName)
        .Select(g => (JsonNode?)new JsonObject
        {
            ["name"] = g.Key,
            ["aliases"] = new JsonArray(g.SelectMany(s => s.Aliases.Prepend(s.Name)).Distinct().Select(a => (JsonNode?)a).ToArray()),
            ["options"] = new JsonObject(),
        }).ToArray()));

    private static IResult Schedulers() => Json(new JsonArray(ScheduleTypes.All
        .Select(t => (JsonNode?)new JsonObject
        {
            ["name"] = t.Name,
            ["label"] = t.DisplayName,
            ["aliases"] = null,
            ["default_rho"] = -1,
            ["need_inner_model"] = false,
        }).ToArray()));

    private IResult Models() => Json(new JsonArray(queue.Catalog.Entries
        .Select(e => (JsonNode?)new JsonObject
        {
            ["title"] = e.Title,
            ["model_name"] = e.ModelName,
            ["hash"] = null,
            ["sha256"] = null,
            ["filename"] = e.Path,
            ["config"] = null,
        }).ToArray()));

    private async Task<IResult> SetOptions(HttpContext context)
    {
        var values = await ReadJson<Dictionary<string, JsonElement>>(context).ConfigureAwait(false);
        // Everything is checked before anything changes: the model name first, then the other values.
        var model = values.TryGetValue(ServerSettings.Checkpoint, out var name) ? queue.Catalog.Find(CheckpointName(name, "options")) : null;
        settings.With(values); // validates
        if (model is not null)
            await queue.RunAsync("load model", model, (_, _, _, _) => true, context.RequestAborted).ConfigureAwait(false);
        settings.Apply(values, "options");
        return Json(JsonValue.Create(true));
    }

    private static async Task<IResult> PngInfo(HttpContext context)
    {
        var payload = await ReadJson<PngInfoPayload>(context).ConfigureAwait(false);
        if (string.IsNullOrEmpty(payload.Image)) throw ApiException.Invalid("image: a base64 PNG is required");
        return Json(RequestMapping.PngInfo(RequestMapping.DecodeBase64(payload.Image, "image")));
    }

    // A JSON content type is required, as FastAPI (AUTOMATIC1111) requires it: another site's page can make a browser
    // send a text/plain POST here without asking, but not an application/json one.
    private static async Task<T> ReadJson<T>(HttpContext context) where T : class
    {
        if (!context.Request.HasJsonContentType())
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, "UnsupportedMediaType", "send the body as JSON with 'Content-Type: application/json'");
        return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, ApiJson.Options, context.RequestAborted).ConfigureAwait(false)
            ?? throw ApiException.Invalid("the body must be a JSON object, not null");
    }

    private static IResult Json(JsonNode? node) => Results.Content(node?.ToJsonString(ApiJson.Options) ?? "null", "application/json");

    private static IResult Resource(string name, string contentType)
    {
        using var stream = typeof(Endpoints).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the server was built without its resource {name}");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return Results.Bytes(memory.ToArray(), contentType);
    }
}
