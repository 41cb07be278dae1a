using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace LatentDiffusion.Server;

/// <summary>
/// A body declared larger than the limit is answered 413 before any of it is parsed. A client that sends the body
/// without waiting for "100 Continue" (most do) is still writing it, and a connection closed under it would reach it
/// as a reset instead of the 413: so up to <see cref="DrainBytes"/> of it are read and dropped first. Larger bodies,
/// and bodies without a length that grow past the limit, are cut off by Kestrel.
/// </summary>
internal static class BodyLimit
{
    public const long DrainBytes = 256L << 20;

    public static async Task Handle(HttpContext context, Func<Task> next, long limit)
    {
        if (context.Request.ContentLength is not long length || length <= limit)
        {
            await next().ConfigureAwait(false);
            return;
        }
        var waitsForContinue = context.Request.Headers.Expect.ToString().Contains("100-continue", StringComparison.OrdinalIgnoreCase);
        if (!waitsForContinue && length <= DrainBytes && context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = DrainBytes;
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted).ConfigureAwait(false);
        }
        await ErrorResponses.Write(context, StatusCodes.Status413PayloadTooLarge, "PayloadTooLarge",
            $"the request body ({length >> 20} MiB) is larger than the server's limit ({limit >> 20} MiB, ldm serve --max-body-mb)").ConfigureAwait(false);
    }
}
