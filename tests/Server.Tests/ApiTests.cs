using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>The AUTOMATIC1111 endpoints against the real server with the embedded model: shapes, defaults, PNG parameters.</summary>
public sealed class ApiTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private TestServer S => fixture.Server;

    private static RgbImage Image(JsonNode response, int i = 0) =>
        ImageDecoder.Decode(Convert.FromBase64String(response["images"]![i]!.GetValue<string>()));

    private static string Parameters(JsonNode response, int i = 0) =>
        PngReader.ReadText(Convert.FromBase64String(response["images"]![i]!.GetValue<string>())).Find(PngText.ParametersKeyword)!;

    [Fact]
    public async Task Txt2img_answers_base64_pngs_with_the_parameters_chunk_the_request_and_the_info_string()
    {
        var response = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a red shirt", negative_prompt = "blurry", steps = 4, seed = 42, cfg_scale = 5 }));
        var image = Image(response);
        Assert.Equal((32, 32), (image.Width, image.Height)); // the embedded model's own size
        Assert.Equal("a red shirt\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, Schedule type: Uniform, CFG scale: 5, Seed: 42, Size: 32x32, Model: fashion-colours",
            Parameters(response));

        var parameters = response["parameters"]!;
        Assert.Equal(4, parameters["steps"]!.GetValue<int>());
        Assert.Equal(42, parameters["seed"]!.GetValue<long>());
        Assert.Equal(32, parameters["width"]!.GetValue<int>());
        Assert.Equal("Euler", parameters["sampler_index"]!.GetValue<string>());
        Assert.Equal(1, parameters["n_iter"]!.GetValue<int>());
        Assert.False(parameters["enable_hr"]!.GetValue<bool>());

        var info = JsonNode.Parse(response["info"]!.GetValue<string>())!;
        Assert.Equal(42, info["seed"]!.GetValue<long>());
        Assert.Equal("Euler", info["sampler_name"]!.GetValue<string>());
        Assert.Equal("fashion-colours", info["sd_model_name"]!.GetValue<string>());
        Assert.Equal(Parameters(response), info["infotexts"]![0]!.GetValue<string>());
        Assert.Equal([42L], info["all_seeds"]!.AsArray().Select(s => s!.GetValue<long>()));
    }

    [Fact]
    public async Task An_empty_request_takes_the_AUTOMATIC1111_defaults_50_steps_cfg_7_Euler_random_seed()
    {
        var response = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { }));
        var parameters = GenerationParameters.Parse(Parameters(response));
        Assert.Equal((50, "Euler", 7.0, 32, 32), (parameters.Steps, parameters.Sampler, parameters.CfgScale, parameters.Width, parameters.Height));
        Assert.InRange(parameters.Seed, 0, uint.MaxValue);
        Assert.Equal(-1, response["parameters"]!["seed"]!.GetValue<long>()); // the request as sent
    }

    [Fact]
    public async Task Batch_size_times_n_iter_images_with_consecutive_seeds_and_the_same_seed_gives_the_same_image()
    {
        var batch = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a bag", steps = 3, seed = 7, batch_size = 2, n_iter = 2 }));
        Assert.Equal(4, batch["images"]!.AsArray().Count);
        var info = JsonNode.Parse(batch["info"]!.GetValue<string>())!;
        Assert.Equal([7L, 8, 9, 10], info["all_seeds"]!.AsArray().Select(s => s!.GetValue<long>()));
        var single = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a bag", steps = 3, seed = 8 }));
        // image i draws its noise from seed + i: alone it is the same image, up to the rounding of batched float arithmetic
        var difference = Image(batch, 1).Pixels.Zip(Image(single).Pixels, (a, b) => Math.Abs(a - b)).ToList();
        Assert.True(difference.Max() <= 2, $"pixels differ by up to {difference.Max()}");
        var again = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a bag", steps = 3, seed = 8 }));
        Assert.Equal(single["images"]![0]!.GetValue<string>(), again["images"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task Sampler_name_and_scheduler_pick_the_sampler_and_schedule_type_AUTOMATIC1111_style()
    {
        var response = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a coat", steps = 4, seed = 1, sampler_name = "DPM++ 2M", scheduler = "Karras" }));
        Assert.Contains("Sampler: DPM++ 2M, Schedule type: Karras", Parameters(response));
        var unknown = await S.PostJson("sdapi/v1/txt2img", new { prompt = "x", steps = 2, sampler_name = "No Such Sampler" });
        Assert.Contains("No Such Sampler", await TestServer.Error(unknown, System.Net.HttpStatusCode.UnprocessableEntity));
    }

    [Fact]
    public async Task Img2img_starts_from_the_init_image_at_the_denoising_strength()
    {
        var source = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a shoe", steps = 4, seed = 3 }));
        var init = source["images"]![0]!.GetValue<string>();
        var response = await TestServer.Ok(await S.PostJson("sdapi/v1/img2img", new { prompt = "a blue shoe", init_images = new[] { init }, denoising_strength = 0.5, steps = 6, seed = 3, width = 32, height = 32 }));
        var parameters = GenerationParameters.Parse(Parameters(response));
        Assert.Equal(0.5, parameters.Strength);
        Assert.Equal(0.5, JsonNode.Parse(response["info"]!.GetValue<string>())!["denoising_strength"]!.GetValue<double>());
        Assert.Equal((32, 32), (Image(response).Width, Image(response).Height));

        // resize_mode 0 ("Just resize") stretches the init image to the requested size
        var resized = await TestServer.Ok(await S.PostJson("sdapi/v1/img2img", new { prompt = "a wide shoe", init_images = new[] { init }, steps = 4, seed = 3, width = 64, height = 48 }));
        Assert.Equal((64, 48), (Image(resized).Width, Image(resized).Height));

        var noInit = await S.PostJson("sdapi/v1/img2img", new { prompt = "x", steps = 2 });
        Assert.Contains("init_images", await TestServer.Error(noInit, System.Net.HttpStatusCode.UnprocessableEntity));
        var notAnImage = await S.PostJson("sdapi/v1/img2img", new { prompt = "x", steps = 2, init_images = new[] { Convert.ToBase64String("not an image"u8.ToArray()) } });
        await TestServer.Error(notAnImage, System.Net.HttpStatusCode.UnprocessableEntity);
    }

    [Fact]
    public async Task Png_info_reads_the_parameters_back_into_AUTOMATIC1111_keys()
    {
        var source = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a hat, red", steps = 5, seed = 11 }));
        var png = source["images"]![0]!.GetValue<string>();
        var info = await TestServer.Ok(await S.PostJson("sdapi/v1/png-info", new { image = "data:image/png;base64," + png }));
        Assert.Equal(Parameters(source), info["info"]!.GetValue<string>());
        Assert.Equal("a hat, red", info["parameters"]!["Prompt"]!.GetValue<string>());
        Assert.Equal("5", info["parameters"]!["Steps"]!.GetValue<string>());
        Assert.Equal("32", info["parameters"]!["Size-1"]!.GetValue<string>());
        var notPng = await S.PostJson("sdapi/v1/png-info", new { image = Convert.ToBase64String(new byte[100]) });
        await TestServer.Error(notPng, System.Net.HttpStatusCode.UnprocessableEntity);
    }

    [Fact]
    public async Task Samplers_schedulers_models_loras_and_options_list_what_the_server_has()
    {
        var samplers = (await S.GetJson("sdapi/v1/samplers")).AsArray();
        var euler = samplers.Single(s => s!["name"]!.GetValue<string>() == "Euler a");
        Assert.Contains("euler_a", euler!["aliases"]!.AsArray().Select(a => a!.GetValue<string>()));
        Assert.Contains(samplers, s => s!["name"]!.GetValue<string>() == "DPM++ 2M");
        Assert.Equal(samplers.Count, samplers.Select(s => s!["name"]!.GetValue<string>()).Distinct().Count());

        var schedulers = (await S.GetJson("sdapi/v1/schedulers")).AsArray();
        Assert.Contains(schedulers, s => s!["name"]!.GetValue<string>() == "karras" && s["label"]!.GetValue<string>() == "Karras");

        var models = (await S.GetJson("sdapi/v1/sd-models")).AsArray();
        Assert.Equal("fashion-colours", models[0]!["title"]!.GetValue<string>());
        Assert.Empty((await S.GetJson("sdapi/v1/loras")).AsArray()); // no --lora-dir (AdapterTests has one)

        var options = await S.GetJson("sdapi/v1/options");
        Assert.Equal("fashion-colours", options["sd_model_checkpoint"]!.GetValue<string>());
        Assert.Equal(1, options["CLIP_stop_at_last_layers"]!.GetValue<int>());
        var unknown = await S.PostJson("sdapi/v1/options", new { samples_format = "jpg" });
        Assert.Contains("samples_format", await TestServer.Error(unknown, System.Net.HttpStatusCode.UnprocessableEntity));
    }

    [Fact]
    public async Task Options_set_clip_skip_for_the_next_requests_and_override_settings_for_one()
    {
        try
        {
            await TestServer.Ok(await S.PostJson("sdapi/v1/options", new Dictionary<string, int> { ["CLIP_stop_at_last_layers"] = 2 }));
            Assert.Equal(2, (await S.GetJson("sdapi/v1/options"))["CLIP_stop_at_last_layers"]!.GetValue<int>());
            var response = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a skirt", steps = 2, seed = 1 }));
            Assert.Equal(2, GenerationParameters.Parse(Parameters(response)).ClipSkip);
        }
        finally
        {
            await TestServer.Ok(await S.PostJson("sdapi/v1/options", new Dictionary<string, int> { ["CLIP_stop_at_last_layers"] = 1 }));
        }
        var once = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "a skirt", steps = 2, seed = 1, override_settings = new Dictionary<string, int> { ["CLIP_stop_at_last_layers"] = 2 } }));
        Assert.Equal(2, GenerationParameters.Parse(Parameters(once)).ClipSkip);
        Assert.Equal(1, (await S.GetJson("sdapi/v1/options"))["CLIP_stop_at_last_layers"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_gallery_keeps_the_newest_images_with_their_parameters()
    {
        var response = await TestServer.Ok(await S.PostJson("sdapi/v1/txt2img", new { prompt = "for the gallery", steps = 2, seed = 77 }));
        var newest = (await S.GetJson("ldm/v1/gallery")).AsArray().Last()!;
        Assert.Equal(response["images"]![0]!.GetValue<string>(), newest["image"]!.GetValue<string>());
        Assert.Equal(Parameters(response), newest["parameters"]!.GetValue<string>());
        Assert.Equal(77, newest["seed"]!.GetValue<long>());

        var gallery = new Api.Gallery();
        for (int i = 0; i < Api.Gallery.Capacity + 8; i++) gallery.Add([$"png{i}"], [$"text{i}"], [i]);
        var kept = gallery.ToJson();
        Assert.Equal(Api.Gallery.Capacity, kept.Count);
        Assert.Equal("png8", kept[0]!["image"]!.GetValue<string>()); // the oldest went first
    }

    [Fact]
    public async Task Progress_is_idle_between_jobs()
    {
        var progress = await S.GetJson("sdapi/v1/progress");
        Assert.Equal(0, progress["progress"]!.GetValue<double>());
        Assert.NotNull(progress["state"]!["job_count"]);
        Assert.Null(progress["current_image"]);
    }

    [Fact]
    public async Task Every_mapped_route_is_in_the_OpenAPI_document()
    {
        var document = await S.GetJson("openapi.json");
        Assert.StartsWith("3.", document["openapi"]!.GetValue<string>());
        var paths = document["paths"]!.AsObject();
        Assert.NotEmpty(S.Server.Routes);
        foreach (var route in S.Server.Routes)
        {
            var (method, path) = (route.Split(' ')[0].ToLowerInvariant(), route.Split(' ')[1]);
            Assert.True(paths[path]?[method] is not null, $"{route} is not in /openapi.json");
        }
        Assert.Equal(S.Server.Routes.Count, paths.Sum(p => p.Value!.AsObject().Count));
    }

    [Fact]
    public async Task The_web_page_is_one_self_contained_file()
    {
        var response = await S.Client.GetAsync("/");
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("<script>", html);
        Assert.Contains("/sdapi/v1/progress", html);
        // no external assets: nothing fetched from another origin, no separate script or style file
        Assert.DoesNotMatch("(src|href)=\"(https?:)?//", html);
        Assert.DoesNotContain("<script src", html);
        Assert.DoesNotContain("<link rel=\"stylesheet\"", html);
    }

    [Fact]
    public async Task The_web_page_s_stop_button_is_A1111_s_Interrupt_and_calls_the_interrupt_endpoint()
    {
        var html = await (await S.Client.GetAsync("/")).Content.ReadAsStringAsync();
        Assert.Matches("<button id=\"interrupt\"[^>]*>Interrupt</button>", html);
        Assert.Contains("$(\"interrupt\").onclick = () => api(\"/sdapi/v1/interrupt\", {})", html);
        Assert.DoesNotContain(">Cancel<", html); // it returns the images made so far: not a cancel
        Assert.Contains("POST /sdapi/v1/interrupt", S.Server.Routes);
    }
}
