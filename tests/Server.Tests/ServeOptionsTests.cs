using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>The settings of <c>ldm serve</c> checked before anything starts.</summary>
public sealed class ServeOptionsTests
{
    [Fact]
    public void Only_a_non_loopback_address_is_warned_about_and_the_warning_says_when_no_key_guards_it()
    {
        Assert.Empty(new ServeOptions { ModelPath = "m" }.Warnings());
        Assert.Empty(new ServeOptions { ModelPath = "m", Address = System.Net.IPAddress.IPv6Loopback }.Warnings());
        Assert.Contains("no --api-key", Assert.Single(new ServeOptions { ModelPath = "m", Address = System.Net.IPAddress.Any }.Warnings()));
        Assert.DoesNotContain("no --api-key", Assert.Single(new ServeOptions { ModelPath = "m", Address = System.Net.IPAddress.Any, ApiKey = "k" }.Warnings()));
    }

    [Theory]
    [InlineData(-1, 8, "port")]
    [InlineData(65536, 8, "port")]
    [InlineData(0, -1, "queue")]
    public void Out_of_range_settings_are_refused_before_the_model_loads(int port, int queue, string mentioned)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => new ServeOptions { ModelPath = "/nonexistent", Port = port, QueueCapacity = queue }.Validate());
        Assert.Contains(mentioned, e.Message);
    }
}
