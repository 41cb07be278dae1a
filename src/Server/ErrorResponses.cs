using System.Text.Json;
using LatentDiffusion.Pipeline;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Server.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace LatentDiffusion.Server;

/// <summary>
/// Every failure becomes a JSON body in AUTOMATIC1111's shape, <c>{"error": kind, "detail": one line}</c>, with a
/// 4xx status for what the client can fix; a fault of the server is a 500 with one line, never a stack trace
/// (that goes to the log). Status codes set without a body (404, 405) get one too.
/// </summary>
internal static class ErrorResponses
{
    public static async Task Handle(HttpContext context, Func<Task> next, ILogger logger)
    {
        try
        {
            await next().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client went away: nobody to answer, its job is cancelled
        }
        catch (Exception e)
        {
            var (status, kind, detail) = Classify(e);
            if (status >= 500 && e is not ApiException) logger.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            if (context.Response.HasStarted) return;
            context.Response.Clear();
            if (e is ApiException { RetryAfterSeconds: { } retry }) context.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Write(context, status, kind, detail).ConfigureAwait(false);
            return;
        }
        var response = context.Response;
        if (response.StatusCode >= 400 && !response.HasStarted && response.ContentLength is null && response.ContentType is null)
        {
            var detail = response.StatusCode switch
            {
                404 => $"no such endpoint: {context.Request.Method} {context.Request.Path} (GET /openapi.json lists them)",
                405 => $"{context.Request.Method} is not allowed on {context.Request.Path}",
                _ => ReasonPhrase(response.StatusCode),
            };
            await Write(context, response.StatusCode, ReasonPhrase(response.StatusCode).Replace(" ", "", StringComparison.Ordinal), detail).ConfigureAwait(false);
        }
    }

    public static Task Write(HttpContext context, int status, string kind, string detail)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var body = JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = kind, ["detail"] = OneLine(detail) }, ApiJson.Options);
        return context.Response.WriteAsync(body);
    }

    private static (int Status, string Kind, string Detail) Classify(Exception e) => e switch
    {
        ApiException a => (a.Status, a.Error, a.Message),
        BadHttpRequestException b when b.StatusCode == StatusCodes.Status413PayloadTooLarge =>
            (413, "PayloadTooLarge", "the request body is larger than the server's limit (ldm serve --max-body-mb)"),
        BadHttpRequestException b => (b.StatusCode, "BadRequest", b.Message),
        JsonException j => (422, "JSONDecodeError", $"the body is not valid JSON for this endpoint: {j.Message}"),
        MemoryLimitException m => (422, "MemoryLimit", m.Message),
        ArgumentException a => (422, "ValidationError", Describe(a)),
        ImageLoadException i => (422, "ValidationError", i.Message),
        // A file the request named that does not fit the model (a LoRA for another architecture); its message names the file.
        InvalidDataException d => (422, "InvalidData", d.Message),
        NonFiniteException n => (500, "NonFinite", n.Message),
        _ => (500, e.GetType().Name, $"internal error: {e.Message}"),
    };

    // The pipeline's checks say what is wrong; .NET's " (Parameter 'x')" and "Actual value was" lines become "(got value)".
    private static string Describe(ArgumentException e)
    {
        var message = e.Message.Split('\n')[0].Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
        return e is ArgumentOutOfRangeException { ActualValue: { } value } ? $"{message} (got {value})" : message;
    }

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length > 1000 ? string.Concat(line.AsSpan(0, 1000), "…") : line;
    }

    private static string ReasonPhrase(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : $"HTTP {status}";
}
