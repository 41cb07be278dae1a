using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>The schedule-type dimension of the sampler registry: resolution, refusal, and the PNG parameters round trip.</summary>
public sealed class ScheduleTypeTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    // The values AUTOMATIC1111 ≥ 1.9 writes after "Schedule type: " (of the ones this library has).
    private static readonly string[] A1111ScheduleTypes = ["Automatic", "Uniform", "Karras", "Exponential", "Beta", "SGM Uniform", "Simple"];

    [Theory]
    [InlineData("DPM++ 2M", "karras", "dpmpp_2m_karras")]      // A1111's two fields ≡ the combined name
    [InlineData("dpmpp_2m", "Karras", "dpmpp_2m_karras")]
    [InlineData("DPM++ 2M", "automatic", "dpmpp_2m_karras")]   // A1111: DPM++ 2M's automatic schedule is Karras
    [InlineData("euler", "automatic", "euler")]
    [InlineData("euler_karras", "uniform", "euler")]
    [InlineData("Euler", "karras", "euler_karras")]
    [InlineData("lms", "karras", "lms_karras")]
    [InlineData("euler", "exponential", "euler_exponential")]
    [InlineData("euler_karras", "Exponential", "euler_exponential")]
    [InlineData("DPM++ 2M", "beta", "dpmpp_2m_beta")]
    [InlineData("lms", "sgm uniform", "lms_sgm_uniform")]
    [InlineData("Euler a", "SGM Uniform", "euler_a_sgm_uniform")]
    [InlineData("euler_a", "simple", "euler_a_simple")]
    [InlineData("DPM++ 2M Karras", "Simple", "dpmpp_2m_simple")]
    [InlineData("ddim", "automatic", "ddim")]
    public void ASamplerAndAScheduleResolveToOneSampler(string sampler, string schedule, string expected)
    {
        var resolved = Samplers.Get(sampler, schedule);
        Assert.Equal(expected, resolved.Name);
        // the combined spelling names the same sampler ("Euler Exponential", "dpmpp_2m_beta")
        Assert.Equal(expected, Samplers.Get(expected).Name);
        Assert.Equal(expected, Samplers.Get($"{resolved.DisplayName} {resolved.ScheduleType}").Name);
    }

    [Fact]
    public void TheScheduleSetsItsOptionsAndTurnsTheOthersOff()
    {
        var exponential = (EulerDiscreteSchedulerConfig)Samplers.Get("euler_karras", "exponential").ConfigFrom(Sd15);
        Assert.True(exponential.UseExponentialSigmas);
        Assert.False(exponential.UseKarrasSigmas);
        Assert.False(exponential.UseBetaSigmas);
        var sgm = (DPMSolverMultistepSchedulerConfig)Samplers.Get("dpmpp_2m_karras", "sgm_uniform").ConfigFrom(Sd15);
        Assert.Equal(TimestepSpacing.Trailing, sgm.TimestepSpacing);
        Assert.False(sgm.UseKarrasSigmas);
        Assert.Equal(2, sgm.SolverOrder);   // the sampler's own options stay
    }

    [Theory]
    [InlineData("euler_a", "karras")]
    [InlineData("euler_a", "beta")]
    [InlineData("ddim", "karras")]
    [InlineData("pndm", "exponential")]
    [InlineData("lcm", "sgm_uniform")]
    [InlineData("ddim", "simple")]
    public void AnUnsupportedCombinationIsRefusedNamingWhatTheSamplerSupports(string sampler, string schedule)
    {
        var e = Assert.Throws<ArgumentException>(() => Samplers.Get(sampler, schedule));
        Assert.Contains($"does not support schedule type '{schedule}'", e.Message);
        Assert.Contains("it supports: automatic", e.Message);
        Assert.False(Samplers.TryGet($"{sampler}_{schedule}", out _));
    }

    [Fact]
    public void AnUnknownScheduleTypeListsTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => Samplers.Get("euler", "simple-ish"));
        Assert.Contains($"known: {string.Join(", ", ScheduleTypes.Names)}", e.Message);
    }

    public static TheoryData<string, string> EverySupportedCombination()
    {
        var data = new TheoryData<string, string>();
        foreach (var sampler in Samplers.All)
            foreach (var schedule in Samplers.SchedulesOf(sampler))
                data.Add(sampler.Name, schedule.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(EverySupportedCombination))]
    public void EverySamplerWithEachOfItsSchedulesRoundTripsThroughThePngParameters(string samplerName, string scheduleName)
    {
        var sampler = Samplers.Get(samplerName, scheduleName);
        var config = sampler.ConfigFrom(Sd15);
        var (display, scheduleType) = Samplers.ParameterNames(config);
        Assert.Equal(sampler.DisplayName, display);
        Assert.Contains(scheduleType, A1111ScheduleTypes);
        Assert.Same(sampler.Class, Samplers.Of(config)!.Class);
        Assert.Equal(sampler.Name, Samplers.Of(config)!.Name);

        var written = new GenerationParameters { Prompt = "x", Steps = 2, Sampler = display, ScheduleType = scheduleType, CfgScale = 7, Seed = 1, Width = 8, Height = 8 };
        Assert.Contains($"Sampler: {display}, Schedule type: {scheduleType}, CFG scale", written.Format());
        var read = Samplers.FromParameters(GenerationParameters.Parse(written.Format()));
        Assert.Equal(sampler.Name, read?.Name);
        Assert.Equal(config, read!.ConfigFrom(Sd15));
        using var scheduler = read.Create(Sd15);
        scheduler.SetTimesteps(5);
        Assert.NotEmpty(scheduler.Timesteps);
    }
}
