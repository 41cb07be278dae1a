using System.Text.Json.Nodes;

namespace LatentDiffusion.Server.Api;

/// <summary>
/// The images made since the server started, for the page's gallery (GET /ldm/v1/gallery): the newest
/// <see cref="Capacity"/> only, so that memory stays flat however long the server runs.
/// </summary>
internal sealed class Gallery
{
    public const int Capacity = 32;

    private readonly Queue<JsonObject> items = new();
    private readonly Lock sync = new();

    /// <summary>Adds the images of one answer (base64 PNGs) with their parameters texts and seeds.</summary>
    public void Add(IReadOnlyList<string> images, IReadOnlyList<string> parameters, IReadOnlyList<long> seeds)
    {
        lock (sync)
        {
            for (int i = 0; i < images.Count; i++)
            {
                items.Enqueue(new JsonObject { ["image"] = images[i], ["parameters"] = parameters[i], ["seed"] = seeds[i] });
                if (items.Count > Capacity) items.Dequeue();
            }
        }
    }

    /// <summary>Oldest first.</summary>
    public JsonArray ToJson()
    {
        lock (sync) return new JsonArray(items.Select(i => (JsonNode?)i.DeepClone()).ToArray());
    }
}
