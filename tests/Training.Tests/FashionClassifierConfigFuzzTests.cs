using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Training.Evaluation;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>Every field of the judge's config set to null, 0, −1, 1e30 and "NaN": a ConfigException naming it, or a model.</summary>
public class FashionClassifierConfigFuzzTests
{
    [Fact]
    public void MutantsFailNamingTheFieldOrBuild()
    {
        var json = System.Text.Json.JsonSerializer.Serialize(new FashionClassifierConfig { BlockOutChannels = [4, 8], SampleSize = 8, FeatureDim = 8, NumColours = 3 },
            ConfigJson.Options);
        var count = ConfigFuzz.Run(json, "judge/config.json", ModelConfig.Parse<FashionClassifierConfig>, c => new FashionClassifier(c).Dispose());
        Assert.InRange(count, 40, 200);
    }
}
