using LatentDiffusion.LatentUNet;
using LatentDiffusion.Onnx;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>
/// <c>ldm bench unet --engine onnx</c>: the benchmark's U-Net (its random weights) exported to ONNX in a temporary folder,
/// the libtorch weights freed, and the forward run by ONNX Runtime with the same inputs. The peak resident set is reset
/// (Linux clear_refs) once the export is done, so the reported peak is ONNX Runtime's, not the export's.
/// </summary>
internal static class OnnxUNet
{
    public static string Attach(BenchTarget target)
    {
        var unet = (UNet2DConditionModel)target.Model;
        var folder = Directory.CreateTempSubdirectory("ld-bench-onnx-");
        try
        {
            var path = Path.Combine(folder.FullName, "model.onnx");
            using (var graph = UNetExport.Emit(unet)) graph.Save(path, 17);
            var config = unet.Config;
            foreach (var p in unet.Parameters()) p.Dispose(); // the libtorch weights go before ONNX Runtime loads its copy
            GC.Collect();
            ModelBenchmark.ResetPeakRss();
            var denoiser = OnnxDenoiser.Open(path, config, new OnnxEngineOptions());
            target.EngineResources = denoiser;
            // SDXL's benchmark inputs add the pooled text embeddings and the time ids
            target.Engine = inputs => denoiser.Forward(inputs[0], 500, inputs.Length > 3
                ? new DenoiserConditioning(inputs[1], TextEmbeds: inputs[2], TimeIds: inputs[3])
                : new DenoiserConditioning(inputs[1]));
            return $"onnxruntime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version} (CPU, {TorchRuntime.Threads} threads)";
        }
        finally
        {
            folder.Delete(recursive: true); // the session has read the file; the weights live in ONNX Runtime now
        }
    }
}
