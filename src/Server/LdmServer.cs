using LatentDiffusion.Server.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LatentDiffusion.Server;

/// <summary>
/// <c>ldm serve</c>: Kestrel serving the AUTOMATIC1111-compatible API and the web page over one shared model.
/// It writes nothing to a console: the caller prints <see cref="Url"/> and <see cref="Warnings"/> and gets the
/// log through an <see cref="ILoggerProvider"/>.
/// </summary>
public sealed class LdmServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly JobQueue queue;
    private bool stopped;

    private LdmServer(WebApplication app, JobQueue queue, Uri url, IReadOnlyList<string> warnings)
    {
        this.app = app;
        this.queue = queue;
        Url = url;
        Warnings = warnings;
    }

    /// <summary>The logger category of the server's own messages (the framework's have theirs).</summary>
    public const string LogCategory = "ldm serve";

    /// <summary>Where the server listens (with the port it got when 0 was asked).</summary>
    public Uri Url { get; }

    /// <summary>Things the user should know (a non-loopback address), for the caller to print.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>The model loaded now.</summary>
    public string ModelTitle => queue.Model.Title;

    /// <summary>Reported after every job: its name, how long it ran, and its failure if it failed.</summary>
    public event Action<string, TimeSpan, Exception?>? JobFinished
    {
        add => queue.JobFinished += value;
        remove => queue.JobFinished -= value;
    }

    /// <summary>Every mapped route as "METHOD /path" (the OpenAPI document must describe each).</summary>
    public IReadOnlyList<string> Routes => app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
        .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => $"{m} {e.RoutePattern.RawText}"))
        .ToList();

    /// <summary>Loads the model (its errors surface here) and starts listening.</summary>
    public static async Task<LdmServer> StartAsync(ServeOptions options, ILoggerProvider? logging = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var warnings = options.Warnings();
        var queue = new JobQueue(options, new ModelCatalog(options.ModelPath));
        try
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            if (logging is not null) builder.Logging.AddProvider(logging);
            builder.Services.AddSingleton<IHostLifetime, CallerOwnedLifetime>(); // Ctrl+C belongs to the caller, which calls StopAsync
            builder.Services.AddRoutingCore();
            builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
            {
                k.Listen(options.Address, options.Port);
                k.AddServerHeader = false;
                k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
                k.Limits.MaxConcurrentConnections = 1000;
            });
            var app = builder.Build();
            var logger = app.Services.GetService<ILoggerFactory>()?.CreateLogger(LogCategory) ?? NullLogger.Instance;
            app.Use((context, next) => ErrorResponses.Handle(context, () => next(context), logger));
            if (options.ApiKey is { } key)
            {
                var check = new ApiKeyCheck(key);
                app.Use((context, next) => check.Handle(context, () => next(context)));
            }
            app.Use((context, next) => BodyLimit.Handle(context, () => next(context), options.MaxBodyBytes));
            app.UseRouting();
            new Endpoints(queue, new ServerSettings(), new AdapterCatalog(options.LoraDirectory, options.ControlNetDirectory)).Map(app);
            await app.StartAsync(cancellation).ConfigureAwait(false);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? throw new InvalidOperationException("Kestrel started without an address");
            return new LdmServer(app, queue, new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal) + "/"), warnings);
        }
        catch
        {
            queue.Dispose();
            throw;
        }
    }

    /// <summary>Cancels the running and waiting jobs, answers their requests, and stops listening.</summary>
    public async Task StopAsync()
    {
        if (stopped) return;
        stopped = true;
        queue.Shutdown();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await app.StopAsync(timeout.Token).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
        queue.Dispose();
    }

    private sealed class CallerOwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
