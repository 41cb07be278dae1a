using LatentDiffusion.Pipeline.Schedulers;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>AUTOMATIC1111 sampler names → diffusers scheduler classes and options.</summary>
public sealed class SchedulerFactoryTests
{
    [Theory]
    [InlineData("ddpm", typeof(DDPMScheduler), "DDPM")]
    [InlineData("ddim", typeof(DDIMScheduler), "DDIM")]
    [InlineData("pndm", typeof(PNDMScheduler), "PLMS")]
    [InlineData("euler", typeof(EulerDiscreteScheduler), "Euler")]
    [InlineData("euler_karras", typeof(EulerDiscreteScheduler), "Euler Karras")]
    [InlineData("euler_a", typeof(EulerAncestralDiscreteScheduler), "Euler a")]
    [InlineData("dpmpp_2m", typeof(DPMSolverMultistepScheduler), "DPM++ 2M")]
    [InlineData("dpmpp_2m_karras", typeof(DPMSolverMultistepScheduler), "DPM++ 2M Karras")]
    [InlineData("lms", typeof(LMSDiscreteScheduler), "LMS")]
    [InlineData("lms_karras", typeof(LMSDiscreteScheduler), "LMS Karras")]
    [InlineData("lcm", typeof(LCMScheduler), "LCM")]
    [InlineData("heun", typeof(HeunDiscreteScheduler), "Heun")]
    [InlineData("dpm2_karras", typeof(KDPM2DiscreteScheduler), "DPM2 Karras")]
    [InlineData("dpm2_a", typeof(KDPM2AncestralDiscreteScheduler), "DPM2 a")]
    [InlineData("dpmpp_2s_a_karras", typeof(DPMSolver2SAncestralScheduler), "DPM++ 2S a Karras")]
    public void NamesMapToSchedulersConfiguredFromTheModelsConfig(string name, Type type, string display)
    {
        var sd15 = SchedulerConfig.Load(ConfigPath("pndm"));
        using var scheduler = SchedulerFactory.Create(name, sd15);
        Assert.IsType(type, scheduler);
        Assert.Equal(display, Samplers.Get(name).LegacyDisplayName);
        Assert.Equal(name, SchedulerFactory.Normalize(display));
        // the model's training schedule carries over
        Assert.Equal(BetaSchedule.ScaledLinear, scheduler.Config.BetaSchedule);
        Assert.Equal(0.012, scheduler.Config.BetaEnd);
        Assert.Equal(1, scheduler.Config.StepsOffset);

        bool karras = name.EndsWith("_karras", StringComparison.Ordinal);
        switch (scheduler.Config)
        {
            case EulerDiscreteSchedulerConfig c: Assert.Equal(karras, c.UseKarrasSigmas); break;
            case LMSDiscreteSchedulerConfig c: Assert.Equal(karras, c.UseKarrasSigmas); break;
            case DPMSolver2SAncestralSchedulerConfig c: Assert.Equal(karras, c.UseKarrasSigmas); break;
            case DPMSolverMultistepSchedulerConfig c:
                Assert.Equal(karras, c.UseKarrasSigmas);
                Assert.Equal(DpmAlgorithmType.DpmSolverPlusPlus, c.AlgorithmType);
                Assert.Equal(2, c.SolverOrder);
                break;
            case DDIMSchedulerConfig c:
                // SD1.5's explicit options carry over (DDIM's own defaults would be true, true)
                Assert.False(c.SetAlphaToOne);
                Assert.False(c.ClipSample);
                break;
            case PNDMSchedulerConfig c: Assert.True(c.SkipPrkSteps); break;
        }
    }

    [Theory]
    [InlineData("Euler a", "euler_a")]
    [InlineData("DPM++ 2M Karras", "dpmpp_2m_karras")]
    [InlineData("dpm++ 2m", "dpmpp_2m")]
    [InlineData("DPMPP-2M-Karras", "dpmpp_2m_karras")]
    [InlineData("PLMS", "pndm")]
    [InlineData("k_euler_a", "euler_a")]
    [InlineData("LMS Karras", "lms_karras")]
    public void UserSpellingsNormalize(string spelled, string canonical) => Assert.Equal(canonical, SchedulerFactory.Normalize(spelled));

    [Fact]
    public void UnknownSamplerIsAnErrorListingTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("dpm_adaptive"));
        Assert.Contains("dpm_adaptive", e.Message);
        Assert.Contains("dpmpp_2m_karras", e.Message);
    }

    [Fact]
    public void WithoutABaseConfigTheClassDefaultsApply()
    {
        using var scheduler = SchedulerFactory.Create("euler_karras");
        var config = Assert.IsType<EulerDiscreteSchedulerConfig>(scheduler.Config);
        Assert.True(config.UseKarrasSigmas);
        Assert.Equal(BetaSchedule.Linear, config.BetaSchedule);
        Assert.Equal(TimestepSpacing.Linspace, config.TimestepSpacing);
    }

    [Fact]
    public void KarrasSchedulesHaveFractionalOrRoundedTimesteps()
    {
        var sd15 = SchedulerConfig.Load(ConfigPath("pndm"));
        using var euler = SchedulerFactory.Create("euler_karras", sd15);
        euler.SetTimesteps(10);
        Assert.Contains(euler.Timesteps, t => t != Math.Floor(t));
        using var dpm = SchedulerFactory.Create("dpmpp_2m_karras", sd15);
        dpm.SetTimesteps(10);
        Assert.All(dpm.Timesteps, t => Assert.Equal(Math.Floor(t), t));
        Assert.Equal(999, dpm.Timesteps[0]);
    }
}
