using System.Net;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>sd_model_checkpoint picks another Stable Diffusion model found beside the first, loading it once.</summary>
public sealed class ModelSwitchTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ldm-serve-models-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task Options_switch_the_checkpoint_and_the_next_image_is_made_by_it()
    {
        Directory.CreateSymbolicLink(Path.Combine(folder, "fashion-colours"), TestServer.EmbeddedModel);
        TinyStableDiffusionFolder.Assemble(Path.Combine(folder, "sd_tiny"));
        Directory.CreateDirectory(Path.Combine(folder, "not-a-model"));
        await using var s = await TestServer.StartAsync(model: Path.Combine(folder, "fashion-colours"));

        var titles = (await s.GetJson("sdapi/v1/sd-models")).AsArray().Select(m => m!["title"]!.GetValue<string>()).ToList();
        Assert.Equal(["fashion-colours", "sd_tiny"], titles);

        await TestServer.Ok(await s.PostJson("sdapi/v1/options", new { sd_model_checkpoint = "sd_tiny [0123456789]" })); // AUTOMATIC1111 titles carry a hash
        Assert.Equal("sd_tiny", (await s.GetJson("sdapi/v1/options"))["sd_model_checkpoint"]!.GetValue<string>());
        var tiny = await TestServer.Ok(await s.PostJson("sdapi/v1/txt2img", new { prompt = "x", steps = 2, seed = 1 }));
        Assert.Equal("sd_tiny", System.Text.Json.Nodes.JsonNode.Parse(tiny["info"]!.GetValue<string>())!["sd_model_name"]!.GetValue<string>());

        var back = await TestServer.Ok(await s.PostJson("sdapi/v1/txt2img", new { prompt = "x", steps = 2, seed = 1, override_settings = new { sd_model_checkpoint = "fashion-colours" } }));
        Assert.Contains("Model: fashion-colours", Pipeline.Imaging.PngReader.ReadText(Convert.FromBase64String(back["images"]![0]!.GetValue<string>())).Find("parameters"));
        await TestServer.Error(await s.PostJson("sdapi/v1/options", new { sd_model_checkpoint = "not-a-model" }), HttpStatusCode.UnprocessableEntity);
    }
}
