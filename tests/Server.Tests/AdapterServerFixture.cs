using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>
/// A server on the tiny golden model (sd_tiny) with its LoRA, embedding and ControlNet fixtures in --lora-dir, --embeddings-dir
/// and --controlnet-dir, and the tiny 9-channel inpainting model beside it (sd_inpaint_tiny, picked by override_settings).
/// </summary>
public sealed class AdapterServerFixture : IAsyncLifetime
{
    private static readonly string Fixtures = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures");

    public string Folder { get; } = Directory.CreateTempSubdirectory("ldm-serve-adapters-").FullName;
    public string Loras => Path.Combine(Folder, "loras");
    public TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var model = TinyStableDiffusionFolder.Assemble(Path.Combine(Folder, "models", "sd_tiny"));
        TinyStableDiffusionFolder.AssembleInpainting(Path.Combine(Folder, "models", "sd_inpaint_tiny"));
        Directory.CreateDirectory(Path.Combine(Loras, "styles"));
        File.Copy(Path.Combine(Fixtures, "pipeline/lora/sd_tiny_lora_kohya.safetensors"), Path.Combine(Loras, "styles", "sd_tiny_lora_kohya.safetensors"));
        var embeddings = Directory.CreateDirectory(Path.Combine(Folder, "embeddings")).FullName;
        File.Copy(Path.Combine(Fixtures, "pipeline/lora/tinytoken.safetensors"), Path.Combine(embeddings, "tinytoken.safetensors"));
        File.WriteAllBytes(Path.Combine(embeddings, "broken.safetensors"), [1, 2, 3]);
        var controlNets = Directory.CreateDirectory(Path.Combine(Folder, "controlnet")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(controlNets, "controlnet_tiny"), Path.Combine(Fixtures, "latentunet/controlnet_tiny"));
        Server = await TestServer.StartAsync(new ServeOptions
        {
            ModelPath = model,
            Port = 0,
            LoraDirectory = Loras,
            EmbeddingsDirectory = embeddings,
            ControlNetDirectory = controlNets,
        });
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }
}
