using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Schedulers;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>scheduler_config.json loading: class defaults, shared keys, diffusers' from_config rules, errors that name the field.</summary>
public sealed class SchedulerConfigTests
{
    // SD1.5's scheduler_config.json as shipped (a PNDM config shared by all schedulers)
    private static string Sd15Json => File.ReadAllText(ConfigPath("pndm"));

    private static string Sd15As(string className) =>
        Sd15Json.Replace("\"PNDMScheduler\"", $"\"{className}\"", StringComparison.Ordinal);

    public static TheoryData<string> GoldenCases() => new() { "ddpm", "ddim", "pndm", "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde" };

    public static TheoryData<string> SecondOrderGoldenCases() => new() { "heun", "kdpm2", "kdpm2_ancestral" };

    [Theory]
    [MemberData(nameof(GoldenCases))]
    [MemberData(nameof(SecondOrderGoldenCases))]
    public void MissingKeysTakeTheClassDefaultsDiffusersUsed(string name)
    {
        // resolved_config.json lists every value diffusers used for the raw file, defaults included
        var raw = SchedulerConfig.Load(ConfigPath(name));
        var resolved = SchedulerConfig.Load(ResolvedConfigPath(name));
        Assert.Equal(resolved.GetType(), raw.GetType());
        var a = raw.ToJson();
        var b = resolved.ToJson();
        foreach (var (key, value) in b)
        {
            if (key == "_use_default_values") continue;
            Assert.True(JsonNode.DeepEquals(value, a[key]), $"{name}: {key} = {a[key]?.ToJsonString()}, diffusers used {value?.ToJsonString()}");
        }

        // the keys diffusers filled from defaults are exactly the ones the raw file did not give
        var diffusersDefaults = JsonNode.Parse(File.ReadAllText(ResolvedConfigPath(name)).Replace("-Infinity", "null", StringComparison.Ordinal))!["_use_default_values"]!
            .AsArray().Select(n => n!.GetValue<string>());
        var ours = a["_use_default_values"]!.AsArray().Select(n => n!.GetValue<string>()).ToHashSet();
        foreach (var key in diffusersDefaults) Assert.Contains(key, ours);
        Assert.DoesNotContain(ours, raw.ExplicitKeys.Contains);
    }

    [Theory]
    [InlineData("DDPMScheduler", TimestepSpacing.Leading)]
    [InlineData("DDIMScheduler", TimestepSpacing.Leading)]
    [InlineData("PNDMScheduler", TimestepSpacing.Leading)]
    [InlineData("LCMScheduler", TimestepSpacing.Leading)]
    [InlineData("EulerDiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("EulerAncestralDiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("DPMSolverMultistepScheduler", TimestepSpacing.Linspace)]
    [InlineData("LMSDiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("HeunDiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("KDPM2DiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("KDPM2AncestralDiscreteScheduler", TimestepSpacing.Linspace)]
    [InlineData("DPMSolver2SAncestralScheduler", TimestepSpacing.Linspace)]
    public void Sd15ConfigLoadsIntoEveryClassWithThatClassesSpacingDefault(string className, TimestepSpacing spacing)
    {
        // SD1.5's file has no timestep_spacing, and keys (skip_prk_steps, clip_sample, …) of other classes
        var config = SchedulerConfig.Parse(Sd15As(className));
        Assert.Equal(className, config.ClassName);
        Assert.Equal(spacing, config.TimestepSpacing);
        Assert.Equal(BetaSchedule.ScaledLinear, config.BetaSchedule);
        Assert.Equal(0.00085, config.BetaStart);
        Assert.Equal(1, config.StepsOffset);
        Assert.DoesNotContain("timestep_spacing", config.ExplicitKeys);
    }

    [Fact]
    public void LeadingSpacingWithStepsOffsetGives901To1()
    {
        using var ddim = SchedulerFactory.Create(SchedulerConfig.Parse(Sd15As("DDIMScheduler")));
        ddim.SetTimesteps(10);
        Assert.Equal([901, 801, 701, 601, 501, 401, 301, 201, 101, 1], ddim.Timesteps);

        // PNDM (PLMS) repeats the second timestep: 5 steps → 801, 601, 601, 401, 201, 1
        using var pndm = SchedulerFactory.Load(ConfigPath("pndm"));
        pndm.SetTimesteps(5);
        Assert.Equal([801, 601, 601, 401, 201, 1], pndm.Timesteps);
    }

    [Fact]
    public void DdpmPipelineConfigGivesTheGoldenTimesteps()
    {
        using var golden = LatentDiffusion.Torch.SafeTensors.SafeTensorsFile.Open(Golden("ddpm_pipeline"));
        using var scheduler = SchedulerFactory.Load(LatentDiffusion.Tests.Common.SharedData.Fixture("pipeline/ddpm_tiny/scheduler")); // a model's scheduler/ folder
        var config = Assert.IsType<DDPMSchedulerConfig>(scheduler.Config);
        Assert.Equal(VarianceType.FixedLarge, config.VarianceType);
        Assert.True(config.ClipSample);
        scheduler.SetTimesteps(10);
        using var expected = golden.Load("timesteps");
        Assert.Equal(expected.ToArray<long>(), scheduler.Timesteps.Select(t => (long)t).ToArray());
    }

    [Fact]
    public void DefaultsOfEachClassAreDiffusersDefaults()
    {
        var ddpm = new DDPMSchedulerConfig();
        Assert.Equal((1000, 0.0001, 0.02, BetaSchedule.Linear, VarianceType.FixedSmall, true, 0), (ddpm.NumTrainTimesteps, ddpm.BetaStart, ddpm.BetaEnd, ddpm.BetaSchedule, ddpm.VarianceType, ddpm.ClipSample, ddpm.StepsOffset));
        Assert.True(new DDIMSchedulerConfig().SetAlphaToOne);
        Assert.False(new PNDMSchedulerConfig().SetAlphaToOne);
        Assert.False(new PNDMSchedulerConfig().SkipPrkSteps);
        var dpm = new DPMSolverMultistepSchedulerConfig();
        Assert.Equal((2, DpmAlgorithmType.DpmSolverPlusPlus, DpmSolverType.Midpoint, true, FinalSigmasType.Zero), (dpm.SolverOrder, dpm.AlgorithmType, dpm.SolverType, dpm.LowerOrderFinal, dpm.FinalSigmasType));
        Assert.Equal(double.NegativeInfinity, dpm.LambdaMinClipped);
        var lcm = new LCMSchedulerConfig();
        Assert.Equal((0.00085, 0.012, BetaSchedule.ScaledLinear, 50, 10.0, TimestepSpacing.Leading, true), (lcm.BetaStart, lcm.BetaEnd, lcm.BetaSchedule, lcm.OriginalInferenceSteps, lcm.TimestepScaling, lcm.TimestepSpacing, lcm.SetAlphaToOne));
    }

    [Theory]
    [InlineData("""{"_class_name": "DDIMScheduler", "beta_schedul": "linear"}""", "beta_schedul")]
    [InlineData("""{"_class_name": "DDIMScheduler", "beta_schedule": "foo"}""", "beta_schedule")]
    [InlineData("""{"_class_name": "DDIMScheduler", "beta_schedule": "sigmoid"}""", "beta_schedule")]
    [InlineData("""{"_class_name": "EulerDiscreteScheduler", "prediction_type": "bar"}""", "prediction_type")]
    [InlineData("""{"_class_name": "DDIMScheduler", "timestep_spacing": "everywhere"}""", "timestep_spacing")]
    [InlineData("""{"_class_name": "DDIMScheduler", "thresholding": true}""", "thresholding")]
    [InlineData("""{"_class_name": "DDPMScheduler", "variance_type": "learned"}""", "variance_type")]
    [InlineData("""{"_class_name": "DDPMScheduler", "num_train_timesteps": "many"}""", "num_train_timesteps")]
    [InlineData("""{"_class_name": "DDPMScheduler", "num_train_timesteps": 0}""", "num_train_timesteps")]
    [InlineData("""{"_class_name": "DDPMScheduler", "trained_betas": [0.1, 0.2]}""", "trained_betas")]
    [InlineData("""{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 4}""", "solver_order")]
    [InlineData("""{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver"}""", "final_sigmas_type")]
    [InlineData("""{"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": true, "use_exponential_sigmas": true}""", "use_exponential_sigmas")]
    [InlineData("""{"_class_name": "EulerDiscreteScheduler", "use_exponential_sigmas": true, "use_beta_sigmas": true}""", "use_beta_sigmas")]
    [InlineData("""{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min", "solver_order": 3}""", "solver_order")]
    [InlineData("""{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": null}""", "timestep_spacing")]
    [InlineData("""{"_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": "yes"}""", "use_karras_sigmas")]
    [InlineData("""{"_class_name": "EulerAncestralDiscreteScheduler", "prediction_type": "sample"}""", "prediction_type")]
    [InlineData("""{"_class_name": "LCMScheduler", "original_inference_steps": 5000}""", "original_inference_steps")]
    [InlineData("""{"_class_name": "KDPM2DiscreteScheduler", "prediction_type": "sample"}""", "prediction_type")]
    [InlineData("""{"_class_name": "HeunDiscreteScheduler", "clip_sample_range": 0}""", "clip_sample_range")]
    [InlineData("""{"_class_name": "CMStochasticIterativeScheduler"}""", "_class_name")]
    [InlineData("""{"beta_start": 0.1}""", "_class_name")]
    public void UnknownFieldsAndUnsupportedValuesAreErrorsNamingTheField(string json, string field)
    {
        var e = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse(json));
        Assert.Equal(field, e.Field);
        Assert.Contains($"'{field}'", e.Message);
    }

    [Fact]
    public void KeysOfOtherSchedulersAndMetadataAreIgnored()
    {
        // solver_order is DPM-Solver's, predict_x0 UniPC's, _diffusers_version metadata: all fine for DDIM
        var config = SchedulerConfig.Parse("""{"_class_name": "DDIMScheduler", "_diffusers_version": "0.1", "solver_order": 3, "predict_x0": true, "clip_sample": false}""");
        var ddim = Assert.IsType<DDIMSchedulerConfig>(config);
        Assert.False(ddim.ClipSample);
        Assert.Equal(["clip_sample"], ddim.ExplicitKeys.ToArray());
    }

    [Fact]
    public void ConvertToCarriesExplicitValuesAndTakesTheNewClassDefaults()
    {
        var pndm = SchedulerConfig.Load(ConfigPath("pndm"));
        // explicit set_alpha_to_one false carries over (DDIM's own default is true), as in diffusers
        var ddim = Assert.IsType<DDIMSchedulerConfig>(pndm.ConvertTo("DDIMScheduler"));
        Assert.False(ddim.SetAlphaToOne);
        Assert.False(ddim.ClipSample);
        Assert.Equal(1, ddim.StepsOffset);
        Assert.Equal(TimestepSpacing.Leading, ddim.TimestepSpacing);

        // a default-filled value does not: DDPM's default "leading" spacing does not become Euler's
        var ddpmResolved = SchedulerConfig.Load(ResolvedConfigPath("ddpm"));
        Assert.Equal(TimestepSpacing.Leading, ddpmResolved.TimestepSpacing);
        var euler = SchedulerConfig.Parse(ddpmResolved.ToJsonString()).ConvertTo("EulerDiscreteScheduler");
        Assert.Equal(TimestepSpacing.Linspace, euler.TimestepSpacing);
        Assert.Equal(BetaSchedule.ScaledLinear, euler.BetaSchedule);

        // a value changed in code counts as given
        var changed = (pndm with { TimestepSpacing = TimestepSpacing.Trailing }).ConvertTo("EulerDiscreteScheduler");
        Assert.Equal(TimestepSpacing.Trailing, changed.TimestepSpacing);

        // overrides must be options of the target class
        var karras = Assert.IsType<LMSDiscreteSchedulerConfig>(pndm.ConvertTo("LMSDiscreteScheduler", new Dictionary<string, JsonNode?> { ["use_karras_sigmas"] = true }));
        Assert.True(karras.UseKarrasSigmas);
        var e = Assert.Throws<SchedulerConfigException>(() => pndm.ConvertTo("DDIMScheduler", new Dictionary<string, JsonNode?> { ["use_karras_sigmas"] = true }));
        Assert.Equal("use_karras_sigmas", e.Field);
    }

    [Fact]
    public void ToJsonRoundTripsAndReadsPythonInfinity()
    {
        var dpm = Assert.IsType<DPMSolverMultistepSchedulerConfig>(SchedulerConfig.Load(ResolvedConfigPath("dpmpp_2m")));
        Assert.Equal(double.NegativeInfinity, dpm.LambdaMinClipped);
        Assert.Null(dpm.VarianceType);
        var again = Assert.IsType<DPMSolverMultistepSchedulerConfig>(SchedulerConfig.Parse(dpm.ToJsonString()));
        Assert.Equal(dpm, again);
        Assert.NotEqual(dpm, dpm with { SolverOrder = 3 });
        Assert.Equal("dpmsolver++", again.ToJson()["algorithm_type"]!.GetValue<string>());
    }

    [Fact]
    public void ZeroStepsIsAnError()
    {
        using var scheduler = new DDIMScheduler();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(0));
        Assert.Equal("steps", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(1001));
    }
}
