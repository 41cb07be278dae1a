using System.Net;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm serve</c>: prints its URL, serves the embedded model, stops cleanly on cancellation (Ctrl+C).</summary>
public sealed class ServeCommandTests
{
    [Fact]
    public async Task Serve_prints_the_url_serves_the_page_and_exits_0_on_ctrl_c()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var ctrlC = new CancellationTokenSource();
        var run = Task.Run(() => CliApp.Run(["serve", "--port", "0"], output, error, ctrlC.Token));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string url;
        while ((url = output.ToString().Trim()).Length == 0)
        {
            Assert.False(run.IsCompleted, $"serve ended early: {error}");
            Assert.True(DateTime.UtcNow < deadline, "serve printed no URL");
            await Task.Delay(50);
        }
        Assert.Matches(@"^http://127\.0\.0\.1:\d+/$", url);
        using (var client = new HttpClient { BaseAddress = new Uri(url) })
        {
            var page = await client.GetAsync("/");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("ldm serve", await page.Content.ReadAsStringAsync());
        }
        await ctrlC.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("serving fashion-colours", error.ToString());
    }

    [Theory]
    [InlineData("--listen", "example.com", "not an IP address")]
    [InlineData("--dtype", "f64", "--dtype")]
    public void Bad_options_are_usage_errors(string option, string value, string mentioned) =>
        CliRunner.Run("serve", option, value, "--port", "0").AssertUsageError(mentioned);

    [Theory]
    [InlineData("--lora-dir", "LoRA directory not found")]
    [InlineData("--embeddings-dir", "embeddings directory not found")]
    [InlineData("--controlnet-dir", "ControlNet directory not found")]
    public void A_missing_adapter_directory_is_one_line_before_the_model_loads(string option, string mentioned)
    {
        var missing = Path.Combine(Path.GetTempPath(), $"ldm-missing-{Guid.NewGuid():N}");
        var run = CliRunner.Run("serve", option, missing, "--port", "0");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"{missing}: {mentioned}", Assert.Single(run.ErrLines));
    }
}
