namespace LatentDiffusion.Tests.Common;

/// <summary>Training recipes small enough for unit tests, as JSON (the training tests parse them; the CLI tests write them to a file).</summary>
public static class TinyRecipes
{
    /// <summary>A tiny ConvNeXt U-Net (dim 4) on 24 real sneakers (class 7): pixel DDPM in about 0.1 s per step.</summary>
    public static string Ddpm(long maxSteps) => $$"""
        {
          "model": { "type": "convnext", "config": { "dim": 4, "dim_mults": [1, 2], "channels": 1, "sample_size": 32 } },
          "noise_scheduler": { "num_train_timesteps": 1000 },
          "data": { "type": "fashion-mnist", "image_size": 32, "labels": [7], "limit": 24, "random_flip": true },
          "sampling": { "inference_steps": 5 },
          "training": {
            "max_steps": {{maxSteps}}, "batch_size": 8, "learning_rate": 0.002, "lr_schedule": "constant", "warmup_steps": 0,
            "ema": { "decay": 0.99 }, "checkpoint_every": 10, "sample_every": 20, "sample_count": 4, "log_every": 1, "seed": 3
          }
        }
        """;
}
