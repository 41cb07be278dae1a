using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Schedulers;

namespace LatentDiffusion.Training.Recipes;

/// <summary>A recipe's "noise_scheduler" section: the DDPMScheduler config of training, whose objective is ε-prediction.</summary>
public static class NoiseSchedulerSection
{
    /// <summary>
    /// The DDPMScheduler config in <paramref name="section"/> (scheduler_config.json keys; omitted keys and a
    /// missing section take diffusers' defaults), validated; errors name <paramref name="source"/> and the field.
    /// </summary>
    public static DDPMSchedulerConfig Parse(JsonObject? section, string source)
    {
        try
        {
            var config = (DDPMSchedulerConfig)SchedulerConfig.FromJson(section?.DeepClone().AsObject() ?? new JsonObject(), "DDPMScheduler");
            config.Validate();
            if (config.PredictionType != PredictionType.Epsilon)
                throw new RecipeException($"{source}: 'noise_scheduler.prediction_type' must be epsilon: the training objective is ε-prediction");
            return config;
        }
        catch (SchedulerConfigException e)
        {
            throw new RecipeException($"{source}: noise_scheduler: {e.Message}", e);
        }
    }
}
