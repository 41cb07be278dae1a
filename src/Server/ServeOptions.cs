using System.Net;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server;

/// <summary>How <c>ldm serve</c> runs: the model, where it listens, who may call it and how many jobs may wait.</summary>
public sealed record ServeOptions
{
    /// <summary>A diffusers model folder or a single-file .safetensors checkpoint, loaded at start.</summary>
    public required string ModelPath { get; init; }

    /// <summary>The address to bind; loopback unless the user asked for another (<see cref="LdmServer.Warnings"/> then says so).</summary>
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>The TCP port (AUTOMATIC1111's 7860); 0 takes a free one (<see cref="LdmServer.Url"/> names it).</summary>
    public int Port { get; init; } = 7860;

    /// <summary>When set, every request must carry it: <c>Authorization: Bearer KEY</c>, or HTTP basic auth with KEY as the password.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Generation requests that may wait while one runs; one more is refused with 503 and Retry-After.</summary>
    public int QueueCapacity { get; init; } = 8;

    /// <summary>The largest request body (base64 init images included); a larger one is refused with 413.</summary>
    public long MaxBodyBytes { get; init; } = 32L << 20;

    /// <summary>Where LoRA names (prompt tags <c>&lt;lora:NAME:0.8&gt;</c>, GET /sdapi/v1/loras) are found, recursively; null: none.</summary>
    public string? LoraDirectory { get; init; }

    /// <summary>Textual-inversion embeddings loaded into every model the server loads (GET /sdapi/v1/embeddings); null: none.</summary>
    public string? EmbeddingsDirectory { get; init; }

    /// <summary>ControlNet models (diffusers folders or single-file checkpoints) a request may name (GET /controlnet/model_list); null: none.</summary>
    public string? ControlNetDirectory { get; init; }

    /// <summary>Device, dtype and memory options of every pipeline the server loads.</summary>
    public PipelineOptions Pipeline { get; init; } = new();

    /// <summary>What the user should be told before the server starts: a non-loopback address exposes the model.</summary>
    public IReadOnlyList<string> Warnings() => IPAddress.IsLoopback(Address) ? [] :
        [$"listening on {Address}, not only this machine: anyone who can reach it can use the model" + (ApiKey is null ? " (no --api-key set)" : "")];

    /// <summary>Throws for settings no server can run with.</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "port must be in 0..65535 (0 = a free port)");
        if (QueueCapacity is < 0 or > 1000) throw new ArgumentOutOfRangeException(nameof(QueueCapacity), QueueCapacity, "queue must be in 0..1000");
        if (MaxBodyBytes < 1024) throw new ArgumentOutOfRangeException(nameof(MaxBodyBytes), MaxBodyBytes, "body limit must be at least 1024 bytes");
        foreach (var (name, dir) in new[] { ("LoRA", LoraDirectory), ("embeddings", EmbeddingsDirectory), ("ControlNet", ControlNetDirectory) })
            if (dir is not null && !Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: {name} directory not found");
        if (ApiKey is { Length: 0 }) throw new ArgumentException("the API key must not be empty", nameof(ApiKey));
    }
}
