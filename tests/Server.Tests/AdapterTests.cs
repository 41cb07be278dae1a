using System.Net;
using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>LoRAs, embeddings, inpainting and ControlNet through AUTOMATIC1111's API on the tiny golden model.</summary>
public sealed class AdapterTests(AdapterServerFixture fixture) : IClassFixture<AdapterServerFixture>
{
    private TestServer S => fixture.Server;

    private static string Parameters(JsonNode response) =>
        PngReader.ReadText(Convert.FromBase64String(response["images"]![0]!.GetValue<string>())).Find("parameters")!;

    private static RgbImage Image(JsonNode response) => ImageDecoder.Decode(Convert.FromBase64String(response["images"]![0]!.GetValue<string>()));

    private static JsonNode Info(JsonNode response) => JsonNode.Parse(response["info"]!.GetValue<string>())!;

    [Fact]
    public async Task The_lists_have_AUTOMATIC1111s_shapes_and_refresh_finds_a_new_lora()
    {
        var lora = Assert.Single((await S.GetJson("sdapi/v1/loras")).AsArray())!.AsObject();
        Assert.Equal(["alias", "metadata", "name", "path"], lora.Select(p => p.Key).Order());
        Assert.Equal("sd_tiny_lora_kohya", lora["name"]!.GetValue<string>());
        Assert.EndsWith(Path.Combine("styles", "sd_tiny_lora_kohya.safetensors"), lora["path"]!.GetValue<string>());
        Assert.IsType<JsonObject>(lora["metadata"]);

        File.Copy(lora["path"]!.GetValue<string>(), Path.Combine(fixture.Loras, "second.safetensors"), overwrite: true);
        Assert.Single((await S.GetJson("sdapi/v1/loras")).AsArray()); // listed at start, until a refresh
        await TestServer.Ok(await S.PostJson("sdapi/v1/refresh-loras", new { }));
        Assert.Equal(["sd_tiny_lora_kohya", "second"], (await S.GetJson("sdapi/v1/loras")).AsArray().Select(l => l!["name"]!.GetValue<string>()).Where(n => n != "wide").Order(StringComparer.Ordinal));

        var embeddings = await S.GetJson("sdapi/v1/embeddings");
        var tiny = embeddings["loaded"]!["tinytoken"]!;
        Assert.True(tiny["vectors"]!.GetValue<int>() >= 1);
        Assert.True(tiny["shape"]!.GetValue<int>() > 0);
        Assert.Contains("broken.safetensors", embeddings["skipped"]!["broken"]!["error"]!.GetValue<string>());

        Assert.Equal(["controlnet_tiny"], (await S.GetJson("controlnet/model_list"))["model_list"]!.AsArray().Select(m => m!.GetValue<string>()));
        var modules = await S.GetJson("controlnet/module_list");
        Assert.Equal(["none", "canny"], modules["module_list"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal(2, modules["module_detail"]!["canny"]!["sliders"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_lora_tag_changes_the_image_and_is_recorded_and_an_unknown_one_is_a_comment()
    {
        var plain = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut", steps = 2, seed = 3 }));
        var tagged = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut <lora:sd_tiny_lora_kohya:0.8>", steps = 2, seed = 3 }));
        Assert.NotEqual(Image(plain).Pixels, Image(tagged).Pixels);
        var parameters = GenerationParameters.Parse(Parameters(tagged));
        Assert.Equal("an astronaut <lora:sd_tiny_lora_kohya:0.8>", parameters.Prompt);
        Assert.Equal("sd_tiny_lora_kohya: b7b73971d6be", parameters.Extra.Single(e => e.Key == "Lora hashes").Value);
        Assert.Equal("sd_tiny_lora_kohya: b7b73971d6be", Info(tagged)["extra_generation_params"]!["Lora hashes"]!.GetValue<string>());
        Assert.Equal("", Info(tagged)["comments"]!.GetValue<string>());

        // the merged LoRA is taken out again: the next plain request makes the plain image
        var again = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut", steps = 2, seed = 3 }));
        Assert.Equal(Image(plain).Pixels, Image(again).Pixels);

        var unknown = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "x <lora:nosuch:1> embedding:nothere", steps = 2, seed = 3 }));
        var comments = Info(unknown)["comments"]!.GetValue<string>();
        Assert.Contains("LoRA 'nosuch' not found", comments);
        Assert.Contains("embedding 'nothere'", comments);

        var embedded = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a tinytoken cat", steps = 2, seed = 3 }));
        var word = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a plain cat", steps = 2, seed = 3 }));
        Assert.NotEqual(Image(word).Pixels, Image(embedded).Pixels);
        // A1111's "TI hashes" (SHA-256 of the whole file, 12 hex digits) for the embedding the prompt uses, none without one
        Assert.Equal("tinytoken: 6be62b069f3d", GenerationParameters.Parse(Parameters(embedded)).Extra.Single(e => e.Key == "TI hashes").Value);
        Assert.Equal("tinytoken: 6be62b069f3d", Info(embedded)["extra_generation_params"]!["TI hashes"]!.GetValue<string>());
        Assert.Null(Info(word)["extra_generation_params"]!["TI hashes"]);

        // a LoRA for another architecture: one line naming the file, and the model's own weights stay (the plain image again)
        var tensors = Torch.SafeTensors.SafeTensorsFile.LoadFile(Path.Combine(fixture.Loras, "styles", "sd_tiny_lora_kohya.safetensors"));
        tensors["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"] = Torch.Tensors.Ones([4, 48]);
        Torch.SafeTensors.SafeTensorsFile.Save(Path.Combine(fixture.Loras, "wide.safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        var wide = await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut <lora:wide:1>", steps = 2, seed = 3 });
        Assert.Contains("made for another architecture", await TestServer.Error(wide, HttpStatusCode.UnprocessableEntity));
        Assert.Equal(Image(plain).Pixels, Image(await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut", steps = 2, seed = 3 }))).Pixels);

        var path = await S.PostJson("sdapi/v1/txt2img", new { prompt = "x <lora:../../etc/passwd:1>", steps = 2 });
        Assert.Contains("not a path", await TestServer.Error(path, HttpStatusCode.UnprocessableEntity));
        var malformed = await S.PostJson("sdapi/v1/txt2img", new { prompt = "x <lora:a:lots>", steps = 2 });
        Assert.Contains("not a multiplier", await TestServer.Error(malformed, HttpStatusCode.UnprocessableEntity));
    }

    [Theory]
    [InlineData("sd_tiny")]
    [InlineData("sd_inpaint_tiny")]
    public async Task Img2img_with_a_mask_inpaints_with_AUTOMATIC1111s_fields(string model)
    {
        var source = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a shoe", steps = 2, seed = 5 }));
        var init = Image(source);
        var mask = RgbImage.Filled(init.Width, init.Height, Rgb.Black);
        for (int y = 0; y < init.Height; y++)
            for (int x = init.Width / 2; x < init.Width; x++) mask.SetPixel(x, y, Rgb.White);
        var png = Convert.ToBase64String(mask.EncodePng());
        object Body(int invert) => new
        {
            prompt = "a red shoe", init_images = new[] { source["images"]![0]!.GetValue<string>() }, mask = "data:image/png;base64," + png,
            mask_blur = 1, inpainting_fill = 1, inpaint_full_res = false, inpainting_mask_invert = invert, denoising_strength = 0.9, steps = 3, seed = 7,
            override_settings = new { sd_model_checkpoint = model },
        };
        JsonNode right, left;
        try
        {
            right = await TestServer.Ok(await S.PostJson("sdapi/v1/img2img", Body(0)));
            left = await TestServer.Ok(await S.PostJson("sdapi/v1/img2img", Body(1)));
            if (model != "sd_tiny")
            {
                var text = await S.PostJson("sdapi/v1/txt2img", new { prompt = "x", steps = 2 });
                Assert.Contains("inpainting model", await TestServer.Error(text, HttpStatusCode.UnprocessableEntity));
            }
        }
        finally
        {
            await TestServer.Ok(await S.PostJson("sdapi/v1/options", new { sd_model_checkpoint = "sd_tiny" })); // the other tests run on sd_tiny
        }
        Assert.Contains("Mask blur: 1", Parameters(right));
        Assert.Contains("Model: " + model, Parameters(right));
        // far from the blurred edge the unmasked half is the init image (pasted back through the blurred mask, as A1111), the masked half changed
        var (r, l) = (Image(right), Image(left));
        Assert.Equal(init.GetPixel(0, 0), r.GetPixel(0, 0));
        Assert.NotEqual(init.Pixels, r.Pixels);
        Assert.Equal(init.GetPixel(init.Width - 1, 0), l.GetPixel(init.Width - 1, 0));
        Assert.NotEqual(r.Pixels, l.Pixels);

        var bad = await S.PostJson("sdapi/v1/img2img", new { prompt = "x", init_images = new[] { source["images"]![0]!.GetValue<string>() }, mask = "%%%", steps = 2 });
        Assert.Contains("mask is not valid base64", await TestServer.Error(bad, HttpStatusCode.UnprocessableEntity));
        var fill = await S.PostJson("sdapi/v1/img2img", new { prompt = "x", init_images = new[] { source["images"]![0]!.GetValue<string>() }, mask = png, inpainting_fill = 7, steps = 2 });
        Assert.Contains("inpainting_fill", await TestServer.Error(fill, HttpStatusCode.UnprocessableEntity));
    }

    private static object ControlNet(object unit, string prompt = "an astronaut") => new
    {
        prompt, steps = 2, seed = 4, alwayson_scripts = new { controlnet = new { args = new[] { unit } } },
    };

    private static string Photo => Convert.ToBase64String(File.ReadAllBytes(Path.Combine(SharedData.RepositoryRoot, "tests/fixtures/pipeline/canny/astronaut.png")));

    [Fact]
    public async Task A_controlnet_unit_of_the_extensions_api_steers_the_image_and_is_recorded()
    {
        var plain = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "an astronaut", steps = 2, seed = 4 }));
        var canny = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", ControlNet(new
        {
            enabled = true, image = Photo, module = "canny", model = "controlnet_tiny [abcdef12]", weight = 0.8, threshold_a = 50, threshold_b = 120,
            guidance_start = 0.0, guidance_end = 1.0, control_mode = "Balanced", resize_mode = "Just Resize", pixel_perfect = false, low_vram = false,
        })));
        Assert.NotEqual(Image(plain).Pixels, Image(canny).Pixels);
        Assert.Contains("ControlNet 0: \"Module: canny, Model: controlnet_tiny, Weight: 0.8, Resize Mode: Just Resize, Threshold A: 50, Threshold B: 120, Guidance Start: 0, Guidance End: 1", Parameters(canny));

        var disabled = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", ControlNet(new { enabled = false, image = Photo, module = "canny", model = "controlnet_tiny" })));
        Assert.Equal(Image(plain).Pixels, Image(disabled).Pixels);
        var ready = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", ControlNet(new { input_image = Photo, module = "none", model = "controlnet_tiny", control_mode = 0 })));
        Assert.Contains("Module: none, Model: controlnet_tiny, Weight: 1,", Parameters(ready));

        // img2img too, with the extension's default Crop and Resize (the photo centre-cropped to the output's aspect ratio)
        var i2i = await TestServer.Ok(await S.PostJson("sdapi/v1/img2img", new
        {
            prompt = "an astronaut", init_images = new[] { plain["images"]![0]!.GetValue<string>() }, denoising_strength = 0.6, steps = 3, seed = 4,
            alwayson_scripts = new { controlnet = new { args = new[] { new { image = Photo, module = "canny", model = "controlnet_tiny" } } } },
        }));
        Assert.Contains("Denoising strength: 0.6", Parameters(i2i));
        Assert.Contains("ControlNet 0: \"Module: canny, Model: controlnet_tiny, Weight: 1,", Parameters(i2i));
    }

    [Fact]
    public async Task The_extensions_three_resize_modes_map_by_name_and_number_with_crop_and_resize_the_default()
    {
        // a square photo on a 64 × 32 output: each mode gives another control image, so another picture
        async Task<(string Mode, byte[] Pixels)> Run(object? resize)
        {
            var unit = new Dictionary<string, object?> { ["image"] = Photo, ["module"] = "canny", ["model"] = "controlnet_tiny" };
            if (resize is not null) unit["resize_mode"] = resize;
            var answer = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new
            {
                prompt = "an astronaut", steps = 2, seed = 4, width = 64, height = 32, alwayson_scripts = new { controlnet = new { args = new[] { unit } } },
            }));
            var mode = System.Text.RegularExpressions.Regex.Match(Parameters(answer), "Resize Mode: ([A-Za-z ]+),").Groups[1].Value;
            return (mode, Image(answer).Pixels);
        }
        var byDefault = await Run(null);
        Assert.Equal("Crop and Resize", byDefault.Mode);
        var crop = await Run(1);
        Assert.Equal("Crop and Resize", crop.Mode);
        Assert.Equal(byDefault.Pixels, crop.Pixels);
        var just = await Run("Just Resize");
        var justByNumber = await Run(0);
        Assert.Equal(["Just Resize", "Just Resize"], [just.Mode, justByNumber.Mode]);
        Assert.Equal(just.Pixels, justByNumber.Pixels);
        var fill = await Run("Resize and Fill");
        var fillByNumber = await Run(2);
        Assert.Equal(["Resize and Fill", "Resize and Fill"], [fill.Mode, fillByNumber.Mode]);
        Assert.Equal(fill.Pixels, fillByNumber.Pixels);
        Assert.NotEqual(crop.Pixels, just.Pixels);
        Assert.NotEqual(crop.Pixels, fill.Pixels);
        Assert.NotEqual(just.Pixels, fill.Pixels);

        var bad = await S.PostJson("sdapi/v1/txt2img", ControlNet(new { image = Photo, model = "controlnet_tiny", resize_mode = 3 }));
        Assert.Contains("resize_mode must be one of 0 \"Just Resize\", 1 \"Crop and Resize\", 2 \"Resize and Fill\", got 3", await TestServer.Error(bad, HttpStatusCode.UnprocessableEntity));
    }

    [Theory]
    [InlineData("{\"image\": \"P\", \"module\": \"canny\", \"model\": \"nosuch\"}", "unknown ControlNet model 'nosuch'")]
    [InlineData("{\"image\": \"P\", \"module\": \"canny\", \"model\": \"../controlnet_tiny\"}", "not a path")]
    [InlineData("{\"image\": \"P\", \"module\": \"depth_midas\", \"model\": \"controlnet_tiny\"}", "'depth_midas' is not supported")]
    [InlineData("{\"image\": \"P\", \"model\": \"controlnet_tiny\", \"control_mode\": 2}", "control_mode")]
    [InlineData("{\"image\": \"%%%\", \"model\": \"controlnet_tiny\"}", "image is not valid base64")]
    [InlineData("{\"model\": \"controlnet_tiny\"}", "a base64 control image is required")]
    [InlineData("{\"image\": \"P\", \"model\": \"controlnet_tiny\", \"weight\": 50}", "weight must be a number in [0, 10]")]
    [InlineData("{\"image\": \"P\", \"model\": \"controlnet_tiny\", \"ipadapter_input\": [1]}", "ipadapter_input")]
    public async Task A_controlnet_unit_the_server_cannot_run_is_a_422_line(string unit, string expected)
    {
        var body = $"{{\"prompt\": \"x\", \"steps\": 2, \"alwayson_scripts\": {{\"controlnet\": {{\"args\": [{unit.Replace("\"P\"", "\"" + Photo + "\"")}]}}}}}}";
        var detail = await TestServer.Error(await S.PostRaw("sdapi/v1/txt2img", body), HttpStatusCode.UnprocessableEntity);
        Assert.Contains(expected, detail);
        Assert.StartsWith("alwayson_scripts.controlnet.args[0]", detail);
    }

    [Fact]
    public async Task Another_extension_script_is_refused()
    {
        var detail = await TestServer.Error(await S.PostJson("sdapi/v1/txt2img", new { prompt = "x", alwayson_scripts = new { adetailer = new { args = Array.Empty<object>() } } }),
            HttpStatusCode.UnprocessableEntity);
        Assert.Contains("alwayson_scripts.adetailer", detail);
    }
}
