using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Fixture paths and tolerance checks shared by the scheduler tests.</summary>
internal static class SchedulerTestSupport
{
    public static string Golden(string name) => SharedData.Fixture($"pipeline/goldens/{name}.safetensors");

    public static string ConfigPath(string schedulerCase) => SharedData.Fixture($"pipeline/schedulers/{schedulerCase}/scheduler_config.json");

    public static string ResolvedConfigPath(string schedulerCase) => SharedData.Fixture($"pipeline/schedulers/{schedulerCase}/resolved_config.json");

}
