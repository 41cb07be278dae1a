using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Schedulers;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Every field of every scheduler class's config set to null, 0, −1, 1e30 and "NaN": a SchedulerConfigException naming
/// the field, or a scheduler whose timesteps are finite. Plus the value checks that used to pass silently.
/// </summary>
public sealed class SchedulerConfigFuzzTests
{
    private static readonly Func<JsonNode?>[] Values = [() => null, () => 0, () => -1, () => 1e30, () => "NaN"];

    [Fact]
    public void EveryMutantFailsNamingTheFieldOrSchedules()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var className in SchedulerConfig.SupportedClassNames)
        {
            var json = SchedulerConfig.Default(className).ToJson();
            json.Remove("_use_default_values"); // otherwise every key would take its class default
            foreach (var key in json.Select(p => p.Key).Where(k => !k.StartsWith('_')).ToList())
                foreach (var value in Values)
                {
                    count++;
                    var copy = json.DeepClone().AsObject();
                    copy[key] = value();
                    try
                    {
                        using var scheduler = SchedulerFactory.Create(SchedulerConfig.FromJson(copy));
                        scheduler.SetTimesteps(10);
                        if (!scheduler.Timesteps.All(double.IsFinite)) failures.Add($"{className} {key}={copy[key]?.ToJsonString() ?? "null"}: non-finite timesteps");
                    }
                    catch (SchedulerConfigException e) when (e.Field == key) { }
                    catch (Exception e)
                    {
                        failures.Add($"{className} {key}={copy[key]?.ToJsonString() ?? "null"}: {e.GetType().Name}: {e.Message}");
                    }
                }
        }
        Assert.InRange(count, 300, 4000); // grows with the registry's scheduler classes
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} mutants failed badly:\n" + string.Join("\n", failures));
    }

    [Theory]
    [InlineData("beta_start", 0.5)]       // above beta_end (0.012): the schedule ends barely noised, the image is flat
    [InlineData("beta_end", 0.0001)]      // below beta_start
    [InlineData("beta_end", 1.0)]
    [InlineData("num_train_timesteps", 10_000_000)]
    [InlineData("dynamic_thresholding_ratio", 0)]
    [InlineData("flow_shift", -1)]
    public void OutOfRangeValuesAreRefusedNamingTheField(string field, double value)
    {
        var json = SchedulerConfig.Default("DPMSolverMultistepScheduler").ToJson();
        json.Remove("_use_default_values");
        json["beta_start"] = 0.00085;
        json["beta_end"] = 0.012;
        json[field] = field == "num_train_timesteps" ? (int)value : value;
        var e = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.FromJson(json));
        Assert.True(e.Field == field || (field == "beta_end" && e.Field == "beta_start"), e.Message);
    }

    [Fact]
    public void TrainedBetasMustMatchTheTimestepsAndLieInTheOpenInterval()
    {
        var json = SchedulerConfig.Default("DDIMScheduler").ToJson();
        json.Remove("_use_default_values");
        json["num_train_timesteps"] = 3;
        json["trained_betas"] = new JsonArray(0.1, 0.2);
        Assert.Equal("trained_betas", Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.FromJson(json)).Field);
        json["trained_betas"] = new JsonArray(0.1, 0.2, "NaN");
        Assert.Equal("trained_betas", Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.FromJson(json)).Field);
        json["trained_betas"] = new JsonArray(0.1, 0.2, 0.3);
        Assert.Equal(3, SchedulerConfig.FromJson(json).TrainedBetas!.Length);
    }
}
