using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Ldm;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>The sampling pipeline of a text-to-image run sits where the trainer put the modules.</summary>
public sealed class LdmTaskTests
{
    [Fact]
    public void ThePipelineRunsOnTheDeviceAndDTypeOfTheTrainedModules()
    {
        var dir = TestDirectory.Create();
        try
        {
            // the modules of the tiny golden model; the task owns (and disposes) them
            var loaded = StableDiffusionPipeline.FromPretrained(TinyStableDiffusionFolder.Assemble(Path.Combine(dir, "tiny")));
            using var task = new LdmTask(new TextToImageModel(loaded.Unet, loaded.TextEncoder), loaded.Vae, loaded.Tokenizer,
                new DDPMSchedulerConfig(), loaded.SchedulerConfig, new LdmSamplingOptions(), sampleLatents: false, "tiny");

            // the trainer moves task.Model to the training device; float64 stands in for a placement other than the CPU default
            task.Model.To(Device.CPU, DType.Float64);
            var pipeline = task.Pipeline;
            Assert.Equal((Device.CPU, DType.Float64), (pipeline.Options.Device, pipeline.Options.DType));
            Assert.All(task.Network.Parameters(), p => Assert.Equal(DType.Float64, p.DType)); // not moved back to float32

            using var result = pipeline.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1, Seed = 1 });
            Assert.Single(result.Images);

            if (TorchRuntime.CudaIsAvailable)
            {
                task.Model.To(Device.Parse("cuda"), DType.Float32);
                Assert.Equal(Device.Parse("cuda"), task.Pipeline.Options.Device);
            }
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }
}
