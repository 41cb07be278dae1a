using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>With --api-key every request needs the key, as a bearer token or as the basic-auth password.</summary>
public sealed class ApiKeyTests
{
    [Fact]
    public async Task Without_or_with_a_wrong_key_a_request_is_a_401_with_the_right_key_it_runs()
    {
        await using var s = await TestServer.StartAsync(apiKey: "s3cret");
        using var anonymous = new HttpClient { BaseAddress = s.Server.Url };
        var none = await anonymous.GetAsync("sdapi/v1/samplers");
        Assert.Contains("Bearer", await TestServer.Error(none, HttpStatusCode.Unauthorized));
        Assert.Contains("Basic", none.Headers.WwwAuthenticate.ToString());
        await TestServer.Error(await anonymous.GetAsync("/"), HttpStatusCode.Unauthorized); // the page too

        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.Equal("wrong API key", await TestServer.Error(await anonymous.PostAsync("sdapi/v1/txt2img", new StringContent("{}")), HttpStatusCode.Unauthorized));

        await TestServer.Ok(await s.Client.GetAsync("sdapi/v1/samplers")); // Bearer s3cret
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("anyone:s3cret")));
        await TestServer.Ok(await anonymous.PostAsync("sdapi/v1/txt2img", new StringContent("{\"steps\": 2}", Encoding.UTF8, "application/json")));
    }
}
