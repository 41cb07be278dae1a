using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using LatentDiffusion.Torch.NN;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>
/// Issue 19: the U-Nets and the ControlNet run a CPU inference batch as two streams (<see cref="BatchStreams"/>) with
/// every batch-major input sliced (per-sample timesteps, text states, ControlNet residuals, SDXL's added conditions,
/// the control image) and give diffusers' numbers, and the one pass's up to float rounding. Alone in its collection:
/// the stream workers are process-wide, and one test counts live tensors.
/// </summary>
[Collection(LiveTensorCount.Name)]
public sealed class BatchStreamsModelTests(ITestOutputHelper output) : IDisposable
{
    private static string SdTiny => SharedData.Fixture("latentunet/sd_tiny/unet");
    private readonly int threads = Set(TorchRuntime.Threads);

    // Two intra-op threads, so that two streams divide them on any machine.
    private static int Set(int previous)
    {
        TorchRuntime.Threads = 2;
        return previous;
    }

    public void Dispose() => TorchRuntime.Threads = threads;

    /// <summary>Runs <paramref name="forward"/> as <paramref name="streams"/> streams and checks that it did (or did not).</summary>
    private static T Run<T>(int streams, Func<T> forward)
    {
        var runs = BatchStreams.Runs;
        using var scope = BatchStreams.Override(streams);
        var result = forward();
        Assert.Equal(runs + (streams > 1 ? 1 : 0), BatchStreams.Runs);
        return result;
    }

    [Theory]
    [InlineData("batch_t")]   // one timestep per sample: sliced with the samples
    [InlineData("scalar_t")]  // one timestep for the batch: shared
    public void TheUNetAsTwoStreamsGivesDiffusersNumbersAndTheOnePasses(string @case)
    {
        using var model = UNet2DConditionModel.FromPretrained(SdTiny).Eval();
        using var golden = new Golden("goldens/unet.safetensors");
        using var noGrad = Autograd.NoGrad();
        Tensor Forward() => model.Forward(golden[$"{@case}.input.sample"], golden[$"{@case}.input.timestep"], golden[$"{@case}.input.encoder_hidden_states"]);
        using var one = Run(1, Forward);
        using var two = Run(2, Forward);
        var error = TensorAssert.Close(two, golden[$"{@case}.output.sample"], 2e-5, 1e-4, $"unet {@case}, two streams");
        // The same operators on half the rows: equal up to the blocking of a product by its row count (f32 rounding).
        var apart = TensorAssert.Close(two, one, 1e-6, 1e-6, "two streams against one pass");
        output.WriteLine($"{@case}: two streams against diffusers {error:E3}, against one pass {apart:E3}");
    }

    [Fact]
    public void Bf16StreamsMatchTheBf16OnePass()
    {
        using var model = UNet2DConditionModel.FromPretrained(SdTiny, dtype: DType.BFloat16).Eval();
        using var golden = new Golden("goldens/unet.safetensors");
        using var noGrad = Autograd.NoGrad();
        using var sample = golden["batch_t.input.sample"].To(DType.BFloat16);
        using var text = golden["batch_t.input.encoder_hidden_states"].To(DType.BFloat16);
        Tensor Forward() => model.Forward(sample, golden["batch_t.input.timestep"], text);
        using var one = Run(1, Forward);
        using var two = Run(2, Forward);
        // Each stream computes its samples with the same kernels; where a product's blocking differs with the row count
        // the bf16 output can round to the neighbouring value: at most 2 bf16 ulps of the output's scale (2 · 2⁻⁸ relative).
        using var f32 = two.To(DType.Float32);
        using var oneF32 = one.To(DType.Float32);
        var scale = TensorAssert.MaxAbsDifference(oneF32, oneF32 * 0);
        var apart = TensorAssert.MaxAbsDifference(f32, oneF32);
        output.WriteLine($"bf16: two streams against one pass {apart:E3} (output max {scale:E3})");
        Assert.True(apart <= 2 * Math.Pow(2, -8) * scale, $"bf16 streams {apart} apart from one pass (output max {scale})");
    }

    [Fact]
    public void ControlNetResidualsAndTheUNetTheyFeedRunAsStreams()
    {
        using var unet = UNet2DConditionModel.FromPretrained(SdTiny);
        using var controlnet = ControlNetModel.FromPretrained(SharedData.Fixture("latentunet/controlnet_tiny"));
        using var golden = new Golden("goldens/controlnet_forward.safetensors");
        using var noGrad = Autograd.NoGrad();
        var sample = golden["input.sample"];
        var text = golden["input.encoder_hidden_states"];
        using var residuals = Run(2, () => controlnet.Forward(sample, golden["input.timestep"], text, golden["input.controlnet_cond"]));
        Assert.Equal(6, residuals.Down.Count);
        for (int i = 0; i < 6; i++)
            TensorAssert.Close(residuals.Down[i], golden[$"scale_1.output.down_block_res_samples.{i}"], 2e-5, 1e-4, $"down residual {i}");
        TensorAssert.Close(residuals.Mid, golden["scale_1.output.mid_block_res_sample"], 2e-5, 1e-4, "mid residual");
        using var one = Run(1, () => unet.Forward(sample, golden["input.timestep"], text, additionalResiduals: residuals));
        using var two = Run(2, () => unet.Forward(sample, golden["input.timestep"], text, additionalResiduals: residuals));
        TensorAssert.Close(two, one, 1e-6, 1e-6, "U-Net with residuals, two streams against one pass");
    }

    [Fact]
    public void SdxlAddedConditionsAreSlicedWithTheirSamples()
    {
        using var unet = UNet2DConditionModel.FromPretrained(SharedData.Fixture("sdxl/sdxl_tiny/unet"));
        var golden = SafeTensorsFile.LoadFile(SharedData.Fixture("sdxl/goldens/sdxl_unet.safetensors"));
        try
        {
            using var noGrad = Autograd.NoGrad();
            var added = new AddedConditions(golden["cfg_pair.input.text_embeds"], golden["cfg_pair.input.time_ids"]);
            using var sample = Run(2, () => unet.Forward(golden["cfg_pair.input.sample"], golden["cfg_pair.input.timestep"],
                golden["cfg_pair.input.encoder_hidden_states"], added: added));
            TensorAssert.Close(sample, golden["cfg_pair.output.sample"], 2e-5, 1e-4, "sdxl cfg_pair, two streams");
        }
        finally
        {
            foreach (var t in golden.Values) t.Dispose();
        }
    }

    [Fact]
    public void ThePixelUNetRunsAsStreams()
    {
        using var model = UNet2DModel.FromPretrained(SharedData.Fixture("latentunet/ddpm_tiny/unet")).Eval();
        using var golden = new Golden("goldens/unet2d_ddpm.safetensors");
        using var noGrad = Autograd.NoGrad();
        using var actual = Run(2, () => model.Forward(golden["input.sample"], golden["input.timestep"]));
        TensorAssert.Close(actual, golden["output.sample"], 3e-5, 1e-4, "unet2d_ddpm, two streams");
    }

    [Fact]
    public void RepeatedStreamedForwardsKeepTheLiveTensorsFlat()
    {
        using var model = UNet2DConditionModel.FromPretrained(SdTiny).Eval();
        using var golden = new Golden("goldens/unet.safetensors");
        using var noGrad = Autograd.NoGrad();
        Run(2, () => model.Forward(golden["batch_t.input.sample"], golden["batch_t.input.timestep"], golden["batch_t.input.encoder_hidden_states"])).Dispose();
        var before = LiveTensorCount.Settled();
        for (int i = 0; i < 5; i++)
            Run(2, () => model.Forward(golden["batch_t.input.sample"], golden["batch_t.input.timestep"], golden["batch_t.input.encoder_hidden_states"])).Dispose();
        Assert.Equal(before, LiveTensorCount.Settled());
    }
}
