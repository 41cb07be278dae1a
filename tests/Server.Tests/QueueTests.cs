using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>
/// One job at a time: a full queue answers 503 with Retry-After, interrupt ends the running job with its partial image (200, as
/// AUTOMATIC1111), a disconnect cancels it, stopping cancels all.
/// </summary>
public sealed class QueueTests
{
    [Fact]
    public async Task A_full_queue_answers_503_with_Retry_After_and_interrupt_ends_the_running_job_with_its_partial_image()
    {
        await using var s = await TestServer.StartAsync(queue: 1);
        var running = s.PostJson("sdapi/v1/txt2img", TestServer.LongJob);
        var first = await s.WaitForProgress(p => TestServer.Step(p) > 0);
        Assert.Equal(1000, first["state"]!["sampling_steps"]!.GetValue<int>());
        Assert.InRange(first["progress"]!.GetValue<double>(), 1e-4, 0.5);
        Assert.True(first["eta_relative"]!.GetValue<double>() > 0);

        var waiting = s.PostJson("sdapi/v1/txt2img", new { prompt = "waits its turn", steps = 2, seed = 5 });
        await s.WaitForProgress(p => TestServer.JobCount(p) == 2);
        var refused = await s.PostJson("sdapi/v1/txt2img", new { prompt = "one too many", steps = 2 });
        Assert.Contains("queue is full", await TestServer.Error(refused, HttpStatusCode.ServiceUnavailable));
        Assert.True(refused.Headers.RetryAfter?.Delta?.TotalSeconds >= 1, "Retry-After missing");

        await TestServer.Ok(await s.Client.PostAsync("sdapi/v1/interrupt", null));
        // AUTOMATIC1111 answers an interrupted job with the image decoded at the interrupt point, and its parameters as asked
        var partial = await TestServer.Ok(await running);
        var image = Pipeline.Imaging.ImageDecoder.Decode(Convert.FromBase64String(partial["images"]!.AsArray().Single()!.GetValue<string>()));
        Assert.Equal((96, 96), (image.Width, image.Height));
        Assert.Contains("Steps: 1000,", Pipeline.Imaging.PngReader.ReadText(Convert.FromBase64String(partial["images"]![0]!.GetValue<string>())).Single(t => t.Keyword == "parameters").Text);
        var next = await TestServer.Ok(await waiting); // the waiting job runs once the interrupted one is gone
        Assert.Single(next["images"]!.AsArray());
        Assert.Equal(0, TestServer.JobCount(await s.GetJson("sdapi/v1/progress")));
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_its_job_and_the_next_runs_at_once()
    {
        await using var s = await TestServer.StartAsync();
        using var gone = new CancellationTokenSource();
        var abandoned = s.PostJson("sdapi/v1/txt2img", TestServer.LongJob, gone.Token);
        await s.WaitForProgress(p => TestServer.Step(p) > 0);
        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        // 1000 steps take minutes; the cancelled job is gone within seconds.
        await s.WaitForProgress(p => TestServer.JobCount(p) == 0, seconds: 10);
        await TestServer.Ok(await s.PostJson("sdapi/v1/txt2img", new { prompt = "next", steps = 2 }));
    }

    [Fact]
    public async Task Stopping_the_server_cancels_the_running_job_and_answers_it()
    {
        var s = await TestServer.StartAsync();
        var running = s.PostJson("sdapi/v1/txt2img", TestServer.LongJob);
        await s.WaitForProgress(p => TestServer.Step(p) > 0);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var stopping = s.Server.StopAsync();
        Assert.Contains("shutting down", await TestServer.Error(await running, HttpStatusCode.ServiceUnavailable));
        await stopping;
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 10);
        await s.DisposeAsync();
    }

    [Fact]
    public async Task Progress_carries_a_preview_of_the_running_job()
    {
        await using var s = await TestServer.StartAsync();
        var running = s.PostJson("sdapi/v1/txt2img", TestServer.LongJob);
        var progress = await s.WaitForProgress(p => p["current_image"] is JsonValue);
        var preview = Pipeline.Imaging.ImageDecoder.Decode(Convert.FromBase64String(progress["current_image"]!.GetValue<string>()));
        Assert.Equal((96, 96), (preview.Width, preview.Height));
        Assert.True(TestServer.Step(progress) >= 10); // AUTOMATIC1111's show_progress_every_n_steps: 10
        await s.Client.PostAsync("sdapi/v1/interrupt", null);
        await TestServer.Ok(await running);
    }
}
