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

    [Fact]
    public async Task Onnx_and_SDXL_folders_are_offered_and_an_ONNX_model_generates_on_ONNX_Runtime()
    {
        var fixtures = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures");
        TinyStableDiffusionFolder.Assemble(Path.Combine(folder, "sd_tiny"));
        Directory.CreateSymbolicLink(Path.Combine(folder, "sd_tiny_onnx"), Path.Combine(fixtures, "onnx", "sd_tiny_onnx"));
        Directory.CreateSymbolicLink(Path.Combine(folder, "sdxl_tiny"), Path.Combine(fixtures, "sdxl", "sdxl_tiny"));
        await using var s = await TestServer.StartAsync(model: Path.Combine(folder, "sd_tiny"));

        var titles = (await s.GetJson("sdapi/v1/sd-models")).AsArray().Select(m => m!["title"]!.GetValue<string>()).ToList();
        Assert.Equal(["sd_tiny", "sd_tiny_onnx", "sdxl_tiny"], titles);

        var torch = await TestServer.Ok(await s.PostJson("sdapi/v1/txt2img", new { prompt = "a horse", steps = 2, seed = 9, sampler_name = "Euler", width = 64, height = 64 }));
        await TestServer.Ok(await s.PostJson("sdapi/v1/options", new { sd_model_checkpoint = "sd_tiny_onnx" }));
        var onnx = await TestServer.Ok(await s.PostJson("sdapi/v1/txt2img", new { prompt = "a horse", steps = 2, seed = 9, sampler_name = "Euler", width = 64, height = 64 }));
        Assert.Equal("sd_tiny_onnx", System.Text.Json.Nodes.JsonNode.Parse(onnx["info"]!.GetValue<string>())!["sd_model_name"]!.GetValue<string>());
        // the same weights on the other engine: the same picture within a grey level or two
        var a = ImageDecoder.Decode(Convert.FromBase64String(torch["images"]![0]!.GetValue<string>())).Pixels;
        var b = ImageDecoder.Decode(Convert.FromBase64String(onnx["images"]![0]!.GetValue<string>())).Pixels;
        Assert.Equal(a.Length, b.Length);
        Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) <= 2, "the ONNX image differs from the libtorch one by more than 2 grey levels");
    }
}
