using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>DPMSolverSinglestepScheduler beyond its golden (order 2, 10 steps): diffusers 0.30.3's order lists and quirks.</summary>
public sealed class DPMSolverSinglestepSchedulerTests
{
    private static DPMSolverSinglestepScheduler Create(string options = "") =>
        (DPMSolverSinglestepScheduler)SchedulerFactory.Create(SchedulerConfig.Parse(
            $$"""{ "_class_name": "DPMSolverSinglestepScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012 {{options}} }"""));

    // get_order_list with lower_order_final (forced on by final_sigmas_type "zero"), as diffusers 0.30.3 writes it
    [Theory]
    [InlineData(2, 10, new[] { 1, 2, 1, 2, 1, 2, 1, 2, 1, 1 })]
    [InlineData(2, 7, new[] { 1, 2, 1, 2, 1, 2, 1 })]
    [InlineData(3, 9, new[] { 1, 2, 3, 1, 2, 3, 1, 2, 1 })]
    [InlineData(3, 10, new[] { 1, 2, 3, 1, 2, 3, 1, 2, 3, 1 })]
    [InlineData(3, 8, new[] { 1, 2, 3, 1, 2, 3, 1, 2 })]
    [InlineData(1, 4, new[] { 1, 1, 1, 1 })]
    public void OrderListIsDiffusers(int order, int steps, int[] expected)
    {
        using var scheduler = Create($""", "solver_order": {order}""");
        scheduler.SetTimesteps(steps);
        Assert.Equal(expected, scheduler.OrderList);
    }

    [Fact]
    public void LowerOrderFinalOffUsesWholeGroupsUntilAnUnevenCountTurnsItOnForGood()
    {
        // final σ_min keeps lower_order_final off; an odd step count turns it on, and (register_to_config) it stays on
        using var scheduler = Create(""", "final_sigmas_type": "sigma_min" """);
        scheduler.SetTimesteps(6);
        Assert.Equal([1, 2, 1, 2, 1, 2], scheduler.OrderList);
        scheduler.SetTimesteps(5);
        Assert.Equal([1, 2, 1, 2, 1], scheduler.OrderList);
        scheduler.SetTimesteps(6);
        Assert.Equal([1, 2, 1, 2, 1, 1], scheduler.OrderList);
    }

    [Theory]
    [InlineData(""", "solver_order": 3 """)]
    [InlineData(""", "solver_order": 3, "solver_type": "heun" """)]
    [InlineData(""", "solver_type": "heun", "use_karras_sigmas": true """)]
    [InlineData(""", "algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_order": 3 """)]
    [InlineData(""", "algorithm_type": "sde-dpmsolver++" """)]
    public void EveryVariantRunsDeterministicallyToAFiniteSample(string options)
    {
        using var scope = DisposeScope.Enter();
        Tensor Run()
        {
            using var scheduler = Create(options);
            scheduler.SetTimesteps(9);
            using var noise = new GeneratorNoise(7);
            var e = Tensors.Randn([1, 4, 4, 4], new Generator(1));
            var x = Tensors.Randn([1, 4, 4, 4], new Generator(2));
            foreach (var t in scheduler.Timesteps)
                x = scheduler.Step(0.1 * scheduler.ScaleModelInput(x, t) + (1 + t / 1000) * e, t, x, noise).PrevSample;
            return x;
        }
        var a = Run();
        Assert.Equal(0, a.IsFinite().LogicalNot().Sum().Item());
        Assert.Equal(0, (a - Run()).Abs().Max().Item());
    }

    [Fact]
    public void StartingInsideAnIntervalLowersTheOrder()
    {
        // img2img: begin index 1 is a second-order step with no output from its interval start: it runs first order
        using var scope = DisposeScope.Enter();
        using var scheduler = Create();
        scheduler.SetTimesteps(10);
        scheduler.SetBeginIndex(1);
        var x = Tensors.Randn([1, 4, 4, 4], new Generator(2));
        var t = scheduler.Timesteps[1];
        var stepped = scheduler.Step(0.5 * x, t, x).PrevSample;
        Assert.Equal(0, stepped.IsFinite().LogicalNot().Sum().Item());
        using var firstOrder = Create(""", "solver_order": 1 """);
        firstOrder.SetTimesteps(10);
        firstOrder.SetBeginIndex(1);
        Assert.True((stepped - firstOrder.Step(0.5 * x, t, x).PrevSample).Abs().Max().Item() < 1e-6);
    }

    [Theory]
    [InlineData(""", "algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min" """, "algorithm_type")]
    [InlineData(""", "algorithm_type": "sde-dpmsolver++", "solver_order": 3 """, "solver_order")]
    [InlineData(""", "algorithm_type": "dpmsolver" """, "final_sigmas_type")]
    [InlineData(""", "solver_order": 4 """, "solver_order")]
    public void UnsupportedCombinationsNameTheField(string options, string field)
    {
        var e = Assert.Throws<SchedulerConfigException>(() => Create(options));
        Assert.Contains(field, e.Message);
    }
}
