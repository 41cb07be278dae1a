using System.Text.Json.Nodes;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Tests.Common;

/// <summary>A writable copy of the tiny SDXL folder in a temporary directory, deleted on dispose.</summary>
internal sealed class TinyXlFolder : IDisposable
{
    /// <summary>tests/fixtures/sdxl/sdxl_tiny (../shared/golden/v2/sdxl_tiny) in the repository.</summary>
    public static string Source => System.IO.Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "sdxl", "sdxl_tiny");

    public string Path { get; } = Directory.CreateTempSubdirectory("ldm-sdxl-").FullName;

    public TinyXlFolder()
    {
        foreach (var file in Directory.EnumerateFiles(Source, "*", SearchOption.AllDirectories))
        {
            var target = System.IO.Path.Combine(Path, System.IO.Path.GetRelativePath(Source, file));
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    public void EditJson(string relative, Action<JsonObject> edit)
    {
        var file = System.IO.Path.Combine(Path, relative);
        var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        edit(json);
        File.WriteAllText(file, json.ToJsonString());
    }

    public void EditIndex(Action<JsonObject> edit) => EditJson("model_index.json", edit);

    /// <summary>
    /// Turns the copy into a tiny refiner as Stability ships one: StableDiffusionXLImg2ImgPipeline, requires_aesthetics_score,
    /// text_encoder_2 only, a U-Net cross-attending to its 64 channels and taking 32 + 5 × 8 = 72 added inputs (random weights).
    /// </summary>
    public void MakeRefiner()
    {
        var config = UNet2DConditionModelConfig.Load(System.IO.Path.Combine(Path, "unet/config.json")) with
        {
            CrossAttentionDim = 64,
            ProjectionClassEmbeddingsInputDim = 72,
        };
        using (var unet = new UNet2DConditionModel(config, new Generator(11))) unet.Save(System.IO.Path.Combine(Path, "unet"));
        Directory.Delete(System.IO.Path.Combine(Path, "text_encoder"), recursive: true);
        Directory.Delete(System.IO.Path.Combine(Path, "tokenizer"), recursive: true);
        EditIndex(index =>
        {
            index["_class_name"] = "StableDiffusionXLImg2ImgPipeline";
            index["requires_aesthetics_score"] = true;
            index["force_zeros_for_empty_prompt"] = false;
            index["text_encoder"] = new JsonArray(null, null);
            index["tokenizer"] = new JsonArray(null, null);
        });
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
