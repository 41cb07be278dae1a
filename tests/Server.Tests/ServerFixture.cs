using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>One server with the embedded model shared by the tests of a class (the model loads once).</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TestServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
