namespace LatentDiffusion.Server;

/// <summary>
/// A request the server refuses, with the HTTP status and one line saying why; answered as
/// AUTOMATIC1111's error body <c>{"error": ..., "detail": ...}</c>.
/// </summary>
public sealed class ApiException(int status, string error, string detail) : Exception(detail)
{
    public int Status { get; } = status;

    /// <summary>A short kind ("ValidationError", "QueueFull", …), AUTOMATIC1111's <c>error</c> field.</summary>
    public string Error { get; } = error;

    /// <summary>Seconds a client should wait before retrying (503 only).</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>422, FastAPI's status for a request that does not validate.</summary>
    public static ApiException Invalid(string detail) => new(422, "ValidationError", detail);

    /// <summary>422 for a field AUTOMATIC1111 has that this server does not implement (yet).</summary>
    public static ApiException Unsupported(string field, string what) => new(422, "NotSupported", $"{field}: {what} is not supported yet");
}
