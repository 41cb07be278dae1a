using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using static LatentDiffusion.Pipeline.Tests.SchedulerTestSupport;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The UniPC / DEIS / TCD options without a diffusers golden, checked through identities of their math:
/// first-order UniPC without corrector and first-order DEIS are DPM-Solver(++)'s first-order step; the
/// higher orders, bh1, ε-space UniPC and the corrector switches change the result but stay close to it.
/// </summary>
public sealed class UniPcDeisTcdBehaviourTests
{
    private static SchedulerConfig Sd15 => SchedulerConfig.Load(ConfigPath("pndm"));

    private static SchedulerConfig Config(string className, params (string Key, JsonNode? Value)[] options) =>
        Sd15.ConvertTo(className, options.ToDictionary(o => o.Key, o => o.Value));

    /// <summary>The golden loop (ε = 0.1·x + (1 + t/1000)·E) over <paramref name="steps"/> steps; the final sample.</summary>
    private static Tensor Run(SchedulerConfig config, int steps = 10, INoiseSource? noise = null)
    {
        using var scope = DisposeScope.Enter();
        using var scheduler = SchedulerFactory.Create(config);
        scheduler.SetTimesteps(steps);
        var e = Tensors.Randn([1, 4, 8, 8], new Generator(1));
        var sample = Tensors.Randn([1, 4, 8, 8], new Generator(2)) * scheduler.InitNoiseSigma;
        foreach (var t in scheduler.Timesteps)
        {
            var input = scheduler.ScaleModelInput(sample, t);
            sample = scheduler.Step(0.1 * input + (1 + t / 1000) * e, t, sample, noise).PrevSample;
        }
        return scope.Keep(sample);
    }

    private static JsonArray AllSteps() => new(Enumerable.Range(0, 10).Select(i => (JsonNode?)i).ToArray());

    [Fact]
    public void FirstOrderUniPcWithoutCorrectorIsDpmSolverPlusPlusFirstOrder()
    {
        using var scope = DisposeScope.Enter();
        var unipc = Run(Config("UniPCMultistepScheduler", ("solver_order", 1), ("disable_corrector", AllSteps())));
        var dpm = Run(Config("DPMSolverMultistepScheduler", ("solver_order", 1), ("algorithm_type", "dpmsolver++")));
        TensorAssert.Close(unipc, dpm, 1e-5, 1e-5, "UniPC-1 vs DPM-Solver++-1");
    }

    [Fact]
    public void FirstOrderUniPcInEpsilonSpaceIsDpmSolverFirstOrder()
    {
        using var scope = DisposeScope.Enter();
        var unipc = Run(Config("UniPCMultistepScheduler", ("solver_order", 1), ("predict_x0", false), ("final_sigmas_type", "sigma_min"), ("disable_corrector", AllSteps())));
        var dpm = Run(Config("DPMSolverMultistepScheduler", ("solver_order", 1), ("algorithm_type", "dpmsolver"), ("final_sigmas_type", "sigma_min")));
        TensorAssert.Close(unipc, dpm, 1e-5, 1e-5, "UniPC-1 (ε) vs DPM-Solver-1");
    }

    [Fact]
    public void FirstOrderDeisIsDpmSolverFirstOrder()
    {
        using var scope = DisposeScope.Enter();
        var deis = Run(Config("DEISMultistepScheduler", ("solver_order", 1)));
        var dpm = Run(Config("DPMSolverMultistepScheduler", ("solver_order", 1), ("algorithm_type", "dpmsolver"), ("final_sigmas_type", "sigma_min")));
        TensorAssert.Close(deis, dpm, 1e-5, 1e-5, "DEIS-1 vs DPM-Solver-1");
    }

    [Theory]
    [InlineData("UniPCMultistepScheduler", "solver_order", 3)]
    [InlineData("UniPCMultistepScheduler", "solver_order", 1)]
    [InlineData("UniPCMultistepScheduler", "solver_type", "bh1")]
    [InlineData("UniPCMultistepScheduler", "predict_x0", false)]
    [InlineData("UniPCMultistepScheduler", "lower_order_final", false)]
    [InlineData("UniPCMultistepScheduler", "use_karras_sigmas", true)]
    [InlineData("UniPCMultistepScheduler", "disable_corrector", "first two")]
    [InlineData("DEISMultistepScheduler", "solver_order", 3)]
    [InlineData("DEISMultistepScheduler", "solver_order", 2)]
    [InlineData("DEISMultistepScheduler", "use_karras_sigmas", true)]
    public void VariantsConvergeToTheSameSolution(string className, string key, object value)
    {
        using var scope = DisposeScope.Enter();
        JsonNode? node = value switch
        {
            "first two" => new JsonArray(0, 1),
            int i => i,
            bool b => b,
            _ => (string)value,
        };
        // all end at σ_min (DEIS always does; ε-space UniPC and a second-order last step divide by h = ∞ at σ = 0,
        // as diffusers does), on the trailing grid, whose last step is as short as the others
        var config = className == "DEISMultistepScheduler"
            ? Config(className, (key, node), ("timestep_spacing", "trailing"))
            : Config(className, (key, node), ("final_sigmas_type", "sigma_min"), ("timestep_spacing", "trailing"));
        // the synthetic model is a linear ODE: every solver approaches its solution at least at first order
        var solution = Solution.Value;
        double coarse = TensorAssert.MaxAbsDifference(Run(config, steps: 10), solution);
        double fine = TensorAssert.MaxAbsDifference(Run(config, steps: 40), solution);
        double scale = solution.Abs().Max().Item();
        Assert.True(double.IsFinite(fine), $"{key} = {value}: non-finite samples");
        Assert.True(fine < coarse / 3, $"{key} = {value}: error {coarse} at 10 steps, {fine} at 40");
        Assert.True(fine < 0.01 * scale, $"{key} = {value}: error {fine} at 40 steps (|x| up to {scale})");
    }

    // UniPC-2 (third-order accurate with its corrector) at 400 steps
    private static readonly Lazy<Tensor> Solution = new(() =>
        Run(Config("UniPCMultistepScheduler", ("final_sigmas_type", "sigma_min"), ("timestep_spacing", "trailing")), steps: 400).DetachFromDisposeScope());

    [Fact]
    public void UniPcKarrasTimestepsAndSigmasAreDpmSolversKarras()
    {
        using var unipc = SchedulerFactory.Create("unipc_karras", Sd15);
        using var dpm = SchedulerFactory.Create("dpmpp_2m_karras", Sd15);
        unipc.SetTimesteps(12);
        dpm.SetTimesteps(12);
        Assert.Equal(dpm.Timesteps, unipc.Timesteps);
        Assert.Equal(((ISigmaSchedule)dpm).Sigmas, ((ISigmaSchedule)unipc).Sigmas);
    }

    [Theory]
    [InlineData(0.0, 0)]
    [InlineData(0.3, 9)]
    [InlineData(1.0, 9)]
    public void TcdDrawsNoiseOnEveryStepButTheLastUnlessGammaIsZero(double gamma, int draws)
    {
        using var scope = DisposeScope.Enter();
        using var scheduler = SchedulerFactory.Create("tcd", Sd15);
        Assert.Equal(0.3, scheduler.Eta); // diffusers' step(eta=0.3)
        scheduler.Eta = gamma;
        scheduler.SetTimesteps(10);
        var noise = new QueueNoise(Enumerable.Range(0, 10).Select(_ => Tensors.Zeros([1, 4, 8, 8])).ToList());
        var sample = Tensors.Randn([1, 4, 8, 8], new Generator(2));
        foreach (var t in scheduler.Timesteps) sample = scheduler.Step(0.1 * sample, t, sample, noise).PrevSample;
        Assert.Equal(draws, noise.Drawn);
        scheduler.Eta = 1.5;
        scheduler.SetTimesteps(10);
        Assert.Throws<InvalidOperationException>(() => scheduler.Step(sample, scheduler.Timesteps[0], sample, noise));
    }

    [Fact]
    public void ConfigValuesAreRewrittenAsEachClassRewritesThem()
    {
        // UniPC keeps bh1 and turns DPM-Solver's solver types into bh2; DEIS turns everything into deis/logrho;
        // DPM-Solver still turns UniPC's and DEIS's values into its own
        Assert.Equal(UniPcSolverType.Bh1, ((UniPCMultistepSchedulerConfig)SchedulerConfig.Parse("""{"_class_name": "UniPCMultistepScheduler", "solver_type": "bh1"}""")).SolverType);
        Assert.Equal(UniPcSolverType.Bh2, ((UniPCMultistepSchedulerConfig)SchedulerConfig.Parse("""{"_class_name": "UniPCMultistepScheduler", "solver_type": "midpoint"}""")).SolverType);
        var deis = (DEISMultistepSchedulerConfig)SchedulerConfig.Parse("""{"_class_name": "DEISMultistepScheduler", "algorithm_type": "dpmsolver++", "solver_type": "bh2"}""");
        Assert.Equal((DeisAlgorithmType.Deis, DeisSolverType.LogRho), (deis.AlgorithmType, deis.SolverType));
        var dpm = (DPMSolverMultistepSchedulerConfig)SchedulerConfig.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "deis", "solver_type": "bh1"}""");
        Assert.Equal((DpmAlgorithmType.DpmSolverPlusPlus, DpmSolverType.Midpoint), (dpm.AlgorithmType, dpm.SolverType));
        Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{"_class_name": "UniPCMultistepScheduler", "solver_type": "sde"}"""));
    }

    [Theory]
    [InlineData("""{"_class_name": "UniPCMultistepScheduler", "solver_p": {"_class_name": "DDIMScheduler"}}""", "solver_p")]
    [InlineData("""{"_class_name": "UniPCMultistepScheduler", "solver_order": 0}""", "solver_order")]
    [InlineData("""{"_class_name": "UniPCMultistepScheduler", "thresholding": true}""", "thresholding")]
    [InlineData("""{"_class_name": "UniPCMultistepScheduler", "predict_x0": false}""", "final_sigmas_type")]
    [InlineData("""{"_class_name": "UniPCMultistepScheduler", "lower_order_final": false}""", "final_sigmas_type")]
    [InlineData("""{"_class_name": "DEISMultistepScheduler", "solver_order": 4}""", "solver_order")]
    [InlineData("""{"_class_name": "TCDScheduler", "original_inference_steps": 0}""", "original_inference_steps")]
    public void UnusableOptionsAreRefusedNamingTheField(string json, string field)
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse(json));
        Assert.Equal(field, error.Field);
    }

    [Fact]
    public void UniPcConfigRoundTripsWithItsCorrectorList()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "UniPCMultistepScheduler", "disable_corrector": [0, 2], "solver_p": null}""");
        var again = SchedulerConfig.Parse(config.ToJsonString());
        Assert.Equal(config, again);
        Assert.Equal([0, 2], ((UniPCMultistepSchedulerConfig)again).DisableCorrector);
    }

    [Theory]
    [InlineData("UniPC", "Automatic", "unipc")] // A1111 counts UniPC among its timestep samplers
    [InlineData("UniPC", "Uniform", "unipc")]
    [InlineData("UniPC", "Karras", "unipc_karras")]
    [InlineData("UniPC", null, "unipc")]
    [InlineData("DEIS", null, "deis")]
    [InlineData("TCD", "Automatic", "tcd")]
    [InlineData("TCD", "Karras", "tcd")]
    public void PngParametersReadBackAsTheSampler(string sampler, string? scheduleType, string expected) =>
        Assert.Equal(expected, Samplers.FromParameters(sampler, scheduleType)?.Name);

    [Fact]
    public void ModelConfigsConvertToTheNewSamplers()
    {
        Assert.Equal(("UniPC", "Karras"), Samplers.ParameterNames(SchedulerFactory.ConfigFor("unipc_karras", Sd15)));
        Assert.Equal(("DEIS", "Uniform"), Samplers.ParameterNames(SchedulerFactory.ConfigFor("deis", Sd15)));
        var tcd = (TCDSchedulerConfig)SchedulerFactory.ConfigFor("tcd", Sd15);
        Assert.Equal((0.00085, 0.012, 1), (tcd.BetaStart, tcd.BetaEnd, tcd.StepsOffset)); // SD1.5's explicit keys carry over
    }
}
