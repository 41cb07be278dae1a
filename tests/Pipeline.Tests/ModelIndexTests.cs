using LatentDiffusion.Pipeline.StableDiffusion;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>model_index.json entries of the wrong JSON type are refused naming the file and the field (found by <c>ldm fuzz</c>).</summary>
public sealed class ModelIndexTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-model-index-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("""{"_class_name": "StableDiffusionPipeline", "unet": [{"a": 1}, "UNet2DConditionModel"]}""", "'unet'")]
    [InlineData("""{"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", 0]}""", "'vae'")]
    [InlineData("""{"_class_name": "StableDiffusionPipeline", "text_encoder": [true, "CLIPTextModel"]}""", "'text_encoder'")]
    [InlineData("""{"_class_name": [null]}""", "'_class_name'")]
    public void AnEntryThatIsNotAStringNamesTheFileAndTheField(string json, string field)
    {
        File.WriteAllText(Path.Combine(directory, "model_index.json"), json);

        var error = Assert.Throws<InvalidDataException>(() => ModelIndex.Load(directory));

        Assert.Contains("model_index.json", error.Message);
        Assert.Contains(field, error.Message);
    }

    [Fact]
    public void StringEntriesAndNullPairsStillLoad()
    {
        File.WriteAllText(Path.Combine(directory, "model_index.json"),
            """{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "safety_checker": [null, null]}""");

        var index = ModelIndex.Load(directory);

        Assert.Equal("StableDiffusionPipeline", index.ClassName);
        Assert.Equal(("diffusers", "UNet2DConditionModel"), Assert.Single(index.Components).Value);
    }
}
