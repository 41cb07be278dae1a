using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace LatentDiffusion.Server;

/// <summary>
/// With an API key, every request must carry it: <c>Authorization: Bearer KEY</c>, or HTTP basic auth with KEY as
/// the password and any user name (what AUTOMATIC1111's --api-auth clients send, and what a browser asks for
/// after the 401's <c>WWW-Authenticate: Basic</c>, so the web page works too). Compared in constant time.
/// </summary>
internal sealed class ApiKeyCheck(string key)
{
    private readonly byte[] keyHash = SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public async Task Handle(HttpContext context, Func<Task> next)
    {
        if (Presented(context.Request) is { } candidate && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(candidate)), keyHash))
        {
            await next().ConfigureAwait(false);
            return;
        }
        context.Response.Headers.WWWAuthenticate = "Basic realm=\"ldm serve\", Bearer";
        var detail = context.Request.Headers.Authorization.Count == 0
            ? "this server needs its API key: send 'Authorization: Bearer KEY' (or HTTP basic auth with the key as password)"
            : "wrong API key";
        await ErrorResponses.Write(context, StatusCodes.Status401Unauthorized, "Unauthorized", detail).ConfigureAwait(false);
    }

    private static string? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header[7..].Trim();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            return colon >= 0 ? pair[(colon + 1)..] : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
