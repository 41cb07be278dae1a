using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>
/// The diffusers pipeline folder of a pixel DDPM:
/// <code>
/// model_index.json                 {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "unet": [library, class]}
/// unet/config.json                 + unet/diffusion_pytorch_model.safetensors
/// scheduler/scheduler_config.json
/// </code>
/// With a UNet2DModel, <c>DDPMPipeline.from_pretrained(folder)</c> loads it. The ConvNeXt U-Net is
/// not a diffusers class: its folder has the same layout with <c>"unet": ["LatentDiffusion.NET",
/// "ConvNeXtUNet"]</c>, which this project loads and diffusers does not.
/// </summary>
public static class DdpmPipelineFolder
{
    public const string DiffusersVersion = "0.30.3";

    public static void Save(string directory, PixelDenoiser denoiser, DDPMSchedulerConfig scheduler)
    {
        Directory.CreateDirectory(directory);
        denoiser.Save(Path.Combine(directory, "unet"));
        var schedulerJson = scheduler.ToJson();
        var ordered = new JsonObject { ["_class_name"] = scheduler.ClassName, ["_diffusers_version"] = DiffusersVersion };
        foreach (var (key, value) in schedulerJson.ToList())
        {
            if (key.StartsWith('_')) continue;
            schedulerJson.Remove(key);
            ordered[key] = value;
        }
        Directory.CreateDirectory(Path.Combine(directory, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(directory, "scheduler", "scheduler_config.json"), ordered.ToJsonString(Json) + "\n");
        var (library, className) = denoiser.IndexEntry;
        var index = new JsonObject
        {
            ["_class_name"] = "DDPMPipeline",
            ["_diffusers_version"] = DiffusersVersion,
            ["scheduler"] = new JsonArray("diffusers", "DDPMScheduler"),
            ["unet"] = new JsonArray(library, className),
        };
        // Written last: a folder with model_index.json is complete.
        AtomicFile.WriteAllText(Path.Combine(directory, "model_index.json"), index.ToJsonString(Json) + "\n");
    }

    private static readonly System.Text.Json.JsonSerializerOptions Json = new() { WriteIndented = true };
}
