using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace LatentDiffusion.Server.Api;

// The adapters' endpoints: AUTOMATIC1111's LoRA and embedding lists, and the ControlNet extension's model and module lists.
internal sealed partial class Endpoints
{
    private void MapAdapters(IEndpointRouteBuilder app)
    {
        app.MapGet("/sdapi/v1/loras", () => Json(new JsonArray([.. adapters.Loras.Select(l => (JsonNode?)new JsonObject
        {
            ["name"] = l.Name,
            ["alias"] = l.Metadata.TryGetValue("ss_output_name", out var alias) && alias.Length > 0 ? alias : l.Name,
            ["path"] = l.Path,
            ["metadata"] = new JsonObject([.. l.Metadata.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value))]),
        })])));
        app.MapPost("/sdapi/v1/refresh-loras", () =>
        {
            adapters.RefreshLoras();
            return Json(null);
        });
        app.MapGet("/sdapi/v1/embeddings", Embeddings);
        app.MapGet("/controlnet/model_list", () => Json(new JsonObject
        {
            ["model_list"] = new JsonArray([.. adapters.ControlNets().Select(c => (JsonNode?)c.Name)]),
        }));
        app.MapGet("/controlnet/module_list", () => Json(new JsonObject
        {
            ["module_list"] = new JsonArray([.. ControlNetArgs.Modules.Select(m => (JsonNode?)m)]),
            ["module_detail"] = new JsonObject
            {
                ["none"] = new JsonObject { ["model_free"] = false, ["sliders"] = new JsonArray() },
                ["canny"] = new JsonObject
                {
                    ["model_free"] = false,
                    ["sliders"] = new JsonArray(
                        new JsonObject { ["name"] = "Canny Low Threshold", ["value"] = 100, ["min"] = 1, ["max"] = 255 },
                        new JsonObject { ["name"] = "Canny High Threshold", ["value"] = 200, ["min"] = 1, ["max"] = 255 }),
                },
            },
        }));
    }

    // AUTOMATIC1111's shape: {"loaded": {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}}, "skipped": {name: {…}}};
    // our files carry no training step or checkpoint, so those are null, and a skipped one says why in "error".
    private IResult Embeddings()
    {
        var loaded = new JsonObject();
        foreach (var e in queue.Embeddings)
            loaded[e.Name] = new JsonObject
            {
                ["step"] = null,
                ["sd_checkpoint"] = null,
                ["sd_checkpoint_name"] = null,
                ["shape"] = queue.EmbeddingWidth,
                ["vectors"] = e.Tokens.Count,
            };
        var skipped = new JsonObject();
        foreach (var (name, why) in queue.SkippedEmbeddings.OrderBy(s => s.Key, StringComparer.Ordinal))
            skipped[name] = new JsonObject { ["step"] = null, ["sd_checkpoint"] = null, ["sd_checkpoint_name"] = null, ["shape"] = null, ["vectors"] = null, ["error"] = why };
        return Json(new JsonObject { ["loaded"] = loaded, ["skipped"] = skipped });
    }
}
