using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>A real <see cref="LdmServer"/> on a free loopback port with the embedded model, and a client for it.</summary>
public sealed class TestServer : IAsyncDisposable
{
    public static string EmbeddedModel => Path.Combine(SharedData.RepositoryRoot, "models", "fashion-colours");

    private TestServer(LdmServer server, string? apiKey)
    {
        Server = server;
        Client = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public LdmServer Server { get; }
    public HttpClient Client { get; }

    public static Task<TestServer> StartAsync(int queue = 8, string? apiKey = null, string? model = null, long maxBody = 32L << 20) =>
        StartAsync(new ServeOptions { ModelPath = model ?? EmbeddedModel, Port = 0, QueueCapacity = queue, ApiKey = apiKey, MaxBodyBytes = maxBody });

    public static async Task<TestServer> StartAsync(ServeOptions options) => new(await LdmServer.StartAsync(options), options.ApiKey);

    public Task<HttpResponseMessage> PostJson(string path, object body, CancellationToken cancellation = default) =>
        PostRaw(path, body is string s ? s : JsonSerializer.Serialize(body), cancellation);

    public Task<HttpResponseMessage> PostRaw(string path, string json, CancellationToken cancellation = default) =>
        Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), cancellation);

    public async Task<JsonNode> GetJson(string path) => await Ok(await Client.GetAsync(path));

    /// <summary>The JSON body of a 200 response (the body is shown when it is not 200).</summary>
    public static async Task<JsonNode> Ok(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>Asserts an error answer: the status, AUTOMATIC1111's {"error", "detail"} body, one line, no stack trace; returns the detail.</summary>
    public static async Task<string> Error(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(["detail", "error"], body.Select(p => p.Key).Order());
        var detail = body["detail"]!.GetValue<string>();
        Assert.False(string.IsNullOrWhiteSpace(detail));
        Assert.DoesNotContain('\n', detail);
        Assert.DoesNotContain(" at LatentDiffusion.", detail);
        return detail;
    }

    /// <summary>Polls /sdapi/v1/progress until <paramref name="condition"/> holds (fails after <paramref name="seconds"/>).</summary>
    public async Task<JsonNode> WaitForProgress(Func<JsonNode, bool> condition, double seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var progress = await GetJson("sdapi/v1/progress");
            if (condition(progress)) return progress;
            Assert.True(DateTime.UtcNow < deadline, $"progress never reached the expected state: {progress.ToJsonString()}");
            await Task.Delay(20);
        }
    }

    public static int Step(JsonNode progress) => progress["state"]!["sampling_step"]!.GetValue<int>();
    public static int JobCount(JsonNode progress) => progress["state"]!["job_count"]!.GetValue<int>();

    /// <summary>A request that runs for minutes unless cancelled (many steps at a larger size).</summary>
    public static object LongJob => new { prompt = "a long job", steps = 1000, width = 96, height = 96, seed = 1 };

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
