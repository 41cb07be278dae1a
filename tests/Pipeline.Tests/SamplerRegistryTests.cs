using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>The sampler registry: every sampler declared once, and every name, PNG field and config derived from it.</summary>
public sealed class SamplerRegistryTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    public static TheoryData<string> SamplerNames() => new(Samplers.Names);

    [Theory]
    [MemberData(nameof(SamplerNames))]
    public void EveryEntryRoundTripsFromItsNameThroughThePngTextAndBack(string name)
    {
        var sampler = Samplers.Get(name);
        Assert.Same(sampler, Samplers.Get(sampler.DisplayName + " " + sampler.ScheduleType));
        Assert.Same(sampler, Samplers.Get(sampler.LegacyDisplayName));
        foreach (var alias in sampler.Aliases) Assert.Same(sampler, Samplers.Get(alias));

        // the new form A1111 ≥ 1.9 writes, and the old one with the schedule in the name
        var written = new GenerationParameters
        {
            Prompt = "x", Steps = 2, Sampler = sampler.DisplayName, ScheduleType = sampler.ScheduleType, CfgScale = 7, Seed = 1, Width = 8, Height = 8,
        };
        Assert.Contains($"Sampler: {sampler.DisplayName}, Schedule type: {sampler.ScheduleType}, CFG scale", written.Format());
        Assert.Same(sampler, Samplers.FromParameters(GenerationParameters.Parse(written.Format())));
        var old = written with { Sampler = sampler.LegacyDisplayName, ScheduleType = null };
        Assert.Same(sampler, Samplers.FromParameters(GenerationParameters.Parse(old.Format())));

        // its config is recognised as this sampler again, on SD1.5's config and on the class defaults
        Assert.Same(sampler, Samplers.Of(sampler.ConfigFrom(Sd15)));
        Assert.Same(sampler, Samplers.Of(sampler.ConfigFrom()));
        using var scheduler = sampler.Create(Sd15);
        Assert.Equal(sampler.Class.ConfigType, scheduler.Config.GetType());
        Assert.Equal(sampler.ClassName, scheduler.Config.ClassName);
    }

    [Fact]
    public void EveryClassIsDeclaredOnceAndEveryOverrideIsAnOptionOfItsClass()
    {
        Assert.Equal(Samplers.Classes.Select(c => c.Name).Distinct(), Samplers.Classes.Select(c => c.Name));
        Assert.Equal(Samplers.Classes.Select(c => c.Name), SchedulerConfig.SupportedClassNames);
        foreach (var c in Samplers.Classes)
        {
            var defaults = SchedulerConfig.Default(c.Name);
            Assert.IsType(c.ConfigType, defaults);
            using var scheduler = SchedulerFactory.Create(defaults);
            Assert.Same(defaults, scheduler.Config);
        }
        Assert.Equal(Samplers.Names.Distinct(), Samplers.Names);
        Assert.All(Samplers.All, s => Assert.Contains(s.Class, Samplers.Classes));
    }

    [Theory]
    [InlineData("DPMSolverMultistepScheduler", """ "use_karras_sigmas": true """, "dpmpp_2m_karras")]
    [InlineData("DPMSolverMultistepScheduler", """ "use_karras_sigmas": false """, "dpmpp_2m")]
    [InlineData("DPMSolverMultistepScheduler", """ "solver_order": 3 """, null)]
    [InlineData("DPMSolverMultistepScheduler", """ "algorithm_type": "sde-dpmsolver++" """, "dpmpp_2m_sde")]
    [InlineData("DPMSolverMultistepScheduler", """ "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true """, "dpmpp_2m_sde_karras")]
    [InlineData("DPMSolverMultistepScheduler", """ "algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min" """, null)]
    [InlineData("DPMSolverMultistepScheduler", """ "algorithm_type": "sde-dpmsolver++", "solver_order": 3 """, "dpmpp_3m_sde")]
    [InlineData("DPMSolverMultistepScheduler", """ "algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_karras_sigmas": true """, "dpmpp_3m_sde_karras")]
    [InlineData("DPMSolverSDEScheduler", """ "use_karras_sigmas": true """, "dpmpp_sde_karras")]
    [InlineData("DPMSolverSDEScheduler", """ "noise_sampler_seed": 3 """, "dpmpp_sde")]
    [InlineData("DPMSolverSinglestepScheduler", """ "solver_order": 2 """, null)]
    [InlineData("DPMSolver2SAncestralScheduler", """ "use_karras_sigmas": true """, "dpmpp_2s_a_karras")]
    [InlineData("DPMSolver2SAncestralScheduler", """ "steps_offset": 1 """, "dpmpp_2s_a")]
    [InlineData("EulerDiscreteScheduler", """ "use_karras_sigmas": true """, "euler_karras")]
    [InlineData("EulerDiscreteScheduler", """ "timestep_spacing": "leading" """, "euler")]
    [InlineData("LMSDiscreteScheduler", """ "use_karras_sigmas": true """, "lms_karras")]
    [InlineData("PNDMScheduler", """ "skip_prk_steps": true """, "pndm")]
    [InlineData("PNDMScheduler", """ "skip_prk_steps": false """, null)]
    [InlineData("EulerAncestralDiscreteScheduler", """ "steps_offset": 1 """, "euler_a")]
    [InlineData("DDIMScheduler", """ "clip_sample": false """, "ddim")]
    public void AModelsSchedulerConfigIsTheMostSpecificMatchingSampler(string className, string options, string? expected)
    {
        var config = SchedulerConfig.Parse($$"""{ "_class_name": "{{className}}", "beta_schedule": "scaled_linear", {{options}} }""");
        Assert.Equal(expected, Samplers.Of(config)?.Name);
        var (sampler, scheduleType) = Samplers.ParameterNames(config);
        Assert.Equal(expected is null ? className : Samplers.Get(expected).DisplayName, sampler);
        Assert.Equal(expected is null ? null : Samplers.Get(expected).ScheduleType, scheduleType);
    }

    [Theory]
    [InlineData("Sampler: DPM++ 2M Karras", "dpmpp_2m_karras")]                           // A1111 < 1.9
    [InlineData("Sampler: DPM++ 2M, Schedule type: Karras", "dpmpp_2m_karras")]           // A1111 ≥ 1.9
    [InlineData("Sampler: DPM++ 2M, Schedule type: Automatic", "dpmpp_2m_karras")]        // ≥ 1.9: DPM++ 2M's default is Karras
    [InlineData("Sampler: DPM++ 2M Karras, Schedule type: Karras", "dpmpp_2m_karras")]
    [InlineData("Sampler: DPM++ 2M", "dpmpp_2m")]                                         // < 1.9: no Karras in the name
    [InlineData("Sampler: DPM++ 2M, Schedule type: Uniform", "dpmpp_2m")]
    [InlineData("Sampler: Euler a, Schedule type: Automatic", "euler_a")]
    [InlineData("Sampler: Euler, Schedule type: Karras", "euler_karras")]
    [InlineData("Sampler: LMS Karras", "lms_karras")]
    [InlineData("Sampler: DDIM, Schedule type: Uniform", "ddim")]                         // A1111 ignores a timestep sampler's schedule
    [InlineData("Sampler: PLMS", "pndm")]
    [InlineData("Sampler: DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras")]
    [InlineData("Sampler: DPM++ 2M SDE, Schedule type: Karras", "dpmpp_2m_sde_karras")]
    [InlineData("Sampler: DPM++ 2M SDE", "dpmpp_2m_sde")]
    [InlineData("Sampler: DPM++ 3M SDE Karras", "dpmpp_3m_sde_karras")]
    [InlineData("Sampler: DPM++ SDE, Schedule type: Automatic", "dpmpp_sde_karras")]             // ≥ 1.9: DPM++ SDE's default is Karras
    [InlineData("Sampler: DPM++ SDE Karras", "dpmpp_sde_karras")]
    [InlineData("Sampler: DPM++ 2S a, Schedule type: Automatic", "dpmpp_2s_a_karras")]          // ≥ 1.9: DPM++ 2S a's default is Karras
    [InlineData("Sampler: DPM++ 2S a Karras", "dpmpp_2s_a_karras")]
    [InlineData("Sampler: DPM++ 2S a", "dpmpp_2s_a")]
    [InlineData("Sampler: DPM++ 2S a, Schedule type: Uniform", "dpmpp_2s_a")]
    [InlineData("Sampler: DPM adaptive", null)]                                           // no diffusers scheduler
    [InlineData("Sampler: Heun", "heun")]
    [InlineData("Sampler: DPM2 a Karras", "dpm2_a_karras")]
    [InlineData("Sampler: DPM2, Schedule type: Automatic", "dpm2")]
    [InlineData("Sampler: DPM++ 2M, Schedule type: Exponential", "dpmpp_2m_exponential")] // a schedule no entry declares
    [InlineData("Sampler: Euler, Schedule type: SGM Uniform", "euler_sgm_uniform")]
    [InlineData("Sampler: Euler a, Schedule type: Karras", null)]                         // Euler a has no Karras sigmas
    public void ParametersTextOfEitherFormParsesToItsSampler(string samplerFields, string? expected)
    {
        var p = GenerationParameters.Parse($"a cat\nSteps: 20, {samplerFields}, CFG scale: 7, Seed: 1, Size: 512x512");
        Assert.Equal(expected, Samplers.FromParameters(p)?.Name);
    }

    [Fact]
    public void UnknownNamesListTheRegistry()
    {
        var e = Assert.Throws<ArgumentException>(() => Samplers.Get("dpm_adaptive"));
        Assert.Contains($"(known: {string.Join(", ", Samplers.Names)})", e.Message);
        Assert.Throws<SchedulerConfigException>(() => Samplers.Class("CMStochasticIterativeScheduler"));
    }
}
