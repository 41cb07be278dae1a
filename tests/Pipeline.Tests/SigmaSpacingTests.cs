using LatentDiffusion.Pipeline.Schedulers;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The exponential and beta σ spacings (diffusers ≥ 0.31's use_exponential_sigmas / use_beta_sigmas) in every
/// class that has them; the exponential one is also checked against diffusers' numbers in SchedulerGoldenTests.
/// </summary>
public sealed class SigmaSpacingTests
{
    private static SchedulerConfig Sd15(string className, string option) => SchedulerConfig.Parse(
        $$"""{"_class_name": "{{className}}", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "{{option}}": true}""");

    private static double[] Sigmas(SchedulerConfig config, int steps)
    {
        using var scheduler = SchedulerFactory.Create(config);
        scheduler.SetTimesteps(steps);
        return ((ISigmaSchedule)scheduler).Sigmas.Select(s => (double)s).ToArray();
    }

    [Theory]
    [InlineData("EulerDiscreteScheduler")]
    [InlineData("LMSDiscreteScheduler")]
    [InlineData("DPMSolverMultistepScheduler")]
    public void ExponentialSigmasAreEvenlySpacedInLogSigma(string className)
    {
        var sigmas = Sigmas(Sd15(className, "use_exponential_sigmas"), 7)[..7];
        var ratios = sigmas.Zip(sigmas.Skip(1), (a, b) => Math.Log(a / b)).ToArray();
        Assert.All(ratios, r => Assert.Equal(ratios[0], r, 4));
        Assert.Equal(14.6146, sigmas[0], 3);   // SD's σ_max
        Assert.Equal(0.0292, sigmas[^1], 3);   // SD's σ_min
    }

    [Theory]
    [InlineData("EulerDiscreteScheduler")]
    [InlineData("LMSDiscreteScheduler")]
    [InlineData("DPMSolverMultistepScheduler")]
    public void BetaSigmasAreSymmetricBetweenTheEnds(string className)
    {
        // Beta(0.6, 0.6) is symmetric: σ_i + σ_{n−1−i} = σ_min + σ_max, and steps crowd towards both ends.
        var sigmas = Sigmas(Sd15(className, "use_beta_sigmas"), 9)[..9];
        double sum = sigmas[0] + sigmas[^1];
        for (int i = 0; i < sigmas.Length; i++) Assert.Equal(sum, sigmas[i] + sigmas[^(i + 1)], 4);
        Assert.Equal(sum / 2, sigmas[4], 4);
        Assert.True(sigmas[0] - sigmas[1] < sigmas[3] - sigmas[4], "beta spacing takes small steps near σ_max");
        Assert.All(sigmas.Zip(sigmas.Skip(1)), p => Assert.True(p.First > p.Second));
    }

    [Theory]
    [InlineData(5, 1, 0.8243196213473034)]   // ppf(0.75; 0.6, 0.6), by Simpson's rule on the Beta density and bisection
    [InlineData(5, 3, 0.17568037865269653)]  // ppf(0.25)
    [InlineData(9, 1, 0.94284363637758589)]  // ppf(0.875) = 1 − ppf(0.125)
    public void BetaSigmasAreTheBetaQuantilesScipyGives(int steps, int index, double ppf)
    {
        var sigmas = Sigmas(Sd15("EulerDiscreteScheduler", "use_beta_sigmas"), steps);
        double min = sigmas[steps - 1], max = sigmas[0];
        Assert.Equal(min + ppf * (max - min), sigmas[index], 1e-4 * max);
    }

    [Theory]
    [InlineData("EulerDiscreteScheduler")]
    [InlineData("EulerAncestralDiscreteScheduler")]
    [InlineData("LMSDiscreteScheduler")]
    [InlineData("DPMSolverMultistepScheduler")]
    public void SimpleSpacingTakesEveryNthTrainingSigmaFromTheLast(string className)
    {
        // A1111's simple_scheduler: sigmas[-(1 + int(i · 1000/30))] → t = 999, 966, 933, 899 (3 · 33.33… is 100.00000000000001 in
        // float64, as in Python; trailing spacing rounds instead: 932)
        var config = SchedulerConfig.Parse($$"""{"_class_name": "{{className}}", "beta_schedule": "scaled_linear", "timestep_spacing": "simple"}""");
        using var scheduler = SchedulerFactory.Create(config);
        scheduler.SetTimesteps(30);
        Assert.Equal([999, 966, 933, 899], scheduler.Timesteps.Take(4).Select(t => Math.Round(t, 3)));
        Assert.Equal(30, scheduler.Timesteps.Count);
        Assert.Equal(33, scheduler.Timesteps[^1], 3);
        if (scheduler is SigmaScheduler) Assert.Equal(((ISigmaSchedule)scheduler).Sigmas[0], scheduler.InitNoiseSigma, 5); // as for trailing
    }

    [Theory]
    [InlineData("DDIMScheduler")]
    [InlineData("PNDMScheduler")]
    [InlineData("DDPMScheduler")]
    public void SimpleSpacingIsRefusedByTheClassesThatDoNotImplementIt(string className)
    {
        var e = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse($$"""{"_class_name": "{{className}}", "timestep_spacing": "simple"}"""));
        Assert.Equal("timestep_spacing", e.Field);
    }
}
