using System.Net;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>Bad requests get a 4xx with AUTOMATIC1111's {"error", "detail"} body and one line, never a 500 or a stack trace.</summary>
public sealed class ErrorTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private TestServer S => fixture.Server;

    [Theory]
    [InlineData("{bad", "not valid JSON")]
    [InlineData("", "not valid JSON")]
    [InlineData("[1, 2]", "not valid JSON")]
    [InlineData("null", "JSON object")]
    [InlineData("{\"steps\": \"many\"}", "$.steps")]
    [InlineData("{\"steps\": 1e9}", "$.steps")]
    [InlineData("{\"prompt\": null}", "prompt")]
    [InlineData("{\"steps\": 0}", "steps must be in 1..1000")]
    [InlineData("{\"cfg_scale\": -3}", "cfg_scale")]
    [InlineData("{\"seed\": -5}", "seed")]
    [InlineData("{\"width\": 100000, \"height\": 64}", "width must be in 1..16384")]
    [InlineData("{\"width\": 33, \"height\": 32, \"steps\": 1}", "multiple of 4")]
    [InlineData("{\"batch_size\": 64, \"n_iter\": 64}", "batch_size × n_iter")]
    [InlineData("{\"enable_hr\": true}", "enable_hr")]
    [InlineData("{\"restore_faces\": true}", "restore_faces")]
    [InlineData("{\"scheduler\": \"sideways\"}", "sideways")]
    [InlineData("{\"prompt\": \"a\\u0000b\"}", "NUL")]
    [InlineData("{\"override_settings\": {\"sd_model_checkpoint\": \"../../etc/passwd\"}}", "not a path")]
    [InlineData("{\"override_settings\": {\"sd_model_checkpoint\": \"other\"}}", "unknown model 'other'")]
    [InlineData("{\"override_settings\": {\"CLIP_stop_at_last_layers\": 99}}", "CLIP_stop_at_last_layers")]
    public async Task A_bad_txt2img_request_is_a_422_naming_the_problem(string body, string mentioned) =>
        Assert.Contains(mentioned, await TestServer.Error(await S.PostRaw("sdapi/v1/txt2img", body), HttpStatusCode.UnprocessableEntity));

    [Fact]
    public async Task A_prompt_of_megabytes_is_refused_before_the_text_encoder_sees_it()
    {
        var detail = await TestServer.Error(await S.PostJson("sdapi/v1/txt2img", new { prompt = new string('x', 5 << 20), steps = 1 }), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("at most 20000", detail);
    }

    [Fact]
    public async Task An_absurd_size_that_passes_the_bounds_is_refused_by_the_memory_estimate_before_allocating()
    {
        var detail = await TestServer.Error(await S.PostJson("sdapi/v1/txt2img", new { width = 16384, height = 16384, batch_size = 64, steps = 1 }), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("16384", detail);
    }

    [Theory]
    [InlineData("../fashion-colours")]
    [InlineData("..")]
    [InlineData("/etc/passwd")]
    [InlineData("models\\x")]
    public async Task A_model_name_with_a_path_in_it_is_refused(string name)
    {
        var detail = await TestServer.Error(await S.PostJson("sdapi/v1/options", new Dictionary<string, string> { ["sd_model_checkpoint"] = name }), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("not a path", detail);
        Assert.Equal("fashion-colours", (await S.GetJson("sdapi/v1/options"))["sd_model_checkpoint"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_50_MB_body_is_a_413_and_the_server_goes_on()
    {
        var big = "{\"prompt\": \"" + new string('a', 50 << 20) + "\"}";
        var response = await S.PostRaw("sdapi/v1/txt2img", big);
        Assert.Contains("larger than", await TestServer.Error(response, HttpStatusCode.RequestEntityTooLarge));
        await TestServer.Ok(await S.Client.GetAsync("sdapi/v1/progress"));
    }

    [Fact]
    public async Task A_body_that_is_not_declared_JSON_is_a_415_so_another_site_cannot_post_here_unasked()
    {
        var form = await S.Client.PostAsync("sdapi/v1/txt2img", new StringContent("{\"steps\": 2}", System.Text.Encoding.UTF8, "text/plain"));
        Assert.Contains("application/json", await TestServer.Error(form, HttpStatusCode.UnsupportedMediaType));
        var options = await S.Client.PostAsync("sdapi/v1/options", new FormUrlEncodedContent([new("sd_model_checkpoint", "x")]));
        await TestServer.Error(options, HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task Unknown_routes_and_wrong_methods_answer_JSON_too()
    {
        Assert.Contains("/sdapi/v1/nothing", await TestServer.Error(await S.Client.GetAsync("sdapi/v1/nothing"), HttpStatusCode.NotFound));
        await TestServer.Error(await S.Client.GetAsync("sdapi/v1/txt2img"), HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task A_fault_of_the_server_is_a_500_with_one_line_and_no_stack_trace()
    {
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Response.Body = new MemoryStream();
        await ErrorResponses.Handle(context, () => throw new InvalidOperationException("the model broke\nsecond line"), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Assert.Equal(500, context.Response.StatusCode);
        context.Response.Body.Position = 0;
        var body = System.Text.Json.Nodes.JsonNode.Parse(context.Response.Body)!;
        Assert.Equal("InvalidOperationException", body["error"]!.GetValue<string>());
        Assert.Equal("internal error: the model broke second line", body["detail"]!.GetValue<string>());
    }
}
