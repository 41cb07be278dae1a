using System.CommandLine;
using System.Net;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Server;
using LatentDiffusion.Torch;
using Microsoft.Extensions.Logging;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm serve</c>: the web page and the AUTOMATIC1111-compatible API (src/Server) until Ctrl+C.</summary>
internal static class ServeCommand
{
    public static Command Create(CliContext context)
    {
        var model = new Option<string?>("--model", "-m") { Description = "A diffusers model folder or a single-file .safetensors checkpoint (default: the embedded model); its Stable Diffusion siblings can be picked from the page and the API" }.IsPath();
        var port = new Option<int>("--port") { Description = "TCP port (0 = a free one)", DefaultValueFactory = _ => 7860 };
        var listen = new Option<string?>("--listen") { Description = "Address to bind instead of 127.0.0.1 (e.g. 0.0.0.0: every interface; prints a warning)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Every request must carry it: 'Authorization: Bearer KEY', or HTTP basic auth with KEY as password" };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait behind the running one; more get 503 with Retry-After", DefaultValueFactory = _ => 8 };
        var maxBody = new Option<int>("--max-body-mb") { Description = "Largest request body in MiB (base64 images included); larger ones get 413", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = DeviceOptions.DTypeHelp, DefaultValueFactory = _ => "f32" };
        var loraDir = new Option<string?>("--lora-dir") { Description = "Folder of LoRA .safetensors files: prompt tags <lora:NAME:0.8> name them; GET /sdapi/v1/loras lists them" }.IsPath();
        var embeddingsDir = new Option<string?>("--embeddings-dir") { Description = "Folder of textual-inversion embeddings loaded into every model the server loads" }.IsPath();
        var controlNetDir = new Option<string?>("--controlnet-dir") { Description = "Folder of ControlNet models (diffusers folders or .safetensors) that requests may name (alwayson_scripts.controlnet)" }.IsPath();
        var command = new Command("serve", "Serve a web page and an AUTOMATIC1111-compatible HTTP API (/sdapi/v1/txt2img, …) on 127.0.0.1 until Ctrl+C")
        {
            model, port, listen, apiKey, queue, maxBody, device, dtype, loraDir, embeddingsDir, controlNetDir,
        };
        command.ChecksDevice(device, dtype);
        command.SetAction(async (parsed, cancellation) =>
        {
            var address = IPAddress.Loopback;
            if (parsed.GetValue(listen) is { } text && !IPAddress.TryParse(text, out address))
                throw new UsageException($"--listen: '{text}' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)");
            var type = DeviceOptions.ParseDType(parsed.GetValue(dtype)!, Device.Parse(parsed.GetValue(device)!));
            if (type is not (DType.Float32 or DType.BFloat16 or DType.Float16))
                throw new UsageException($"--dtype must be f32, bf16, f16 or auto, not {parsed.GetValue(dtype)}");
            var options = new ServeOptions
            {
                ModelPath = DefaultModel.Resolve(parsed.GetValue(model)),
                Address = address!,
                Port = parsed.GetValue(port),
                ApiKey = parsed.GetValue(apiKey),
                QueueCapacity = parsed.GetValue(queue),
                MaxBodyBytes = (long)parsed.GetValue(maxBody) << 20,
                LoraDirectory = parsed.GetValue(loraDir),
                EmbeddingsDirectory = parsed.GetValue(embeddingsDir),
                ControlNetDirectory = parsed.GetValue(controlNetDir),
                Pipeline = new PipelineOptions { Device = Device.Parse(parsed.GetValue(device)!), DType = type },
            };
            await using var server = await LdmServer.StartAsync(options, new ErrorLog(context), cancellation).ConfigureAwait(false);
            foreach (var warning in server.Warnings) context.Warn(warning);
            server.JobFinished += (name, time, failure) =>
                context.Err.WriteLine($"{name}: {(failure is null ? "done" : failure is OperationCanceledException ? "cancelled" : "failed: " + ErrorReporter.Describe(failure))} in {time.TotalSeconds:F1} s");
            context.Out.WriteLine(server.Url);
            context.Err.WriteLine($"serving {server.ModelTitle} at {server.Url} (API: {server.Url}sdapi/v1/, OpenAPI: {server.Url}openapi.json); Ctrl+C stops");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellation).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                context.Err.WriteLine("stopping: cancelling the running job");
            }
            await server.StopAsync().ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The server's own errors (a fault answered with 500) as one line each on standard error; the hosting
    /// framework's log is left out (a failure to start reaches the user as the exception ErrorReporter prints).
    /// </summary>
    private sealed class ErrorLog(CliContext context) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) =>
            categoryName == LdmServer.LogCategory ? this : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            context.Error(exception is null ? formatter(state, exception) : $"{formatter(state, exception)}: {ErrorReporter.Describe(exception)}");
        }

        public void Dispose()
        {
        }
    }
}
