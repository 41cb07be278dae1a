namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>A scheduler config that cannot be used: an unknown field, an unsupported value, a bad type.</summary>
public sealed class SchedulerConfigException : Exception
{
    public SchedulerConfigException(string field, string detail, Exception? inner = null)
        : base($"scheduler config field '{field}': {detail}", inner)
    {
        Field = field;
    }

    /// <summary>The config name (as in scheduler_config.json) of the offending field.</summary>
    public string Field { get; }
}
