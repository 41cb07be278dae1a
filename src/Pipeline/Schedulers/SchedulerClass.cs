namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// A diffusers scheduler class this library implements: its name (<c>_class_name</c>), its config
/// record and its constructor. <see cref="Samplers.Classes"/> declares each once; loading a
/// scheduler_config.json and creating a scheduler both go through it.
/// </summary>
public sealed record SchedulerClass
{
    private readonly Func<SchedulerConfig> defaultConfig;
    private readonly Func<SchedulerConfig, IScheduler> create;

    private SchedulerClass(string name, Type configType, Func<SchedulerConfig> defaultConfig, Func<SchedulerConfig, IScheduler> create)
    {
        Name = name;
        ConfigType = configType;
        this.defaultConfig = defaultConfig;
        this.create = create;
    }

    /// <summary>diffusers' class name, e.g. "DDIMScheduler".</summary>
    public string Name { get; }

    /// <summary>The config record of the class, e.g. <see cref="DDIMSchedulerConfig"/>.</summary>
    public Type ConfigType { get; }

    /// <summary>The class whose config is <typeparamref name="TConfig"/> (the class name is the config's).</summary>
    public static SchedulerClass Of<TConfig>(Func<TConfig, IScheduler> create) where TConfig : SchedulerConfig, new() =>
        new(new TConfig().ClassName, typeof(TConfig), () => new TConfig(), config => create(config as TConfig
            ?? throw new SchedulerConfigException("_class_name", $"{config.GetType().Name} does not configure {new TConfig().ClassName}")));

    /// <summary>The class defaults (diffusers' <c>Class()</c>).</summary>
    public SchedulerConfig DefaultConfig() => defaultConfig();

    /// <summary>The scheduler <paramref name="config"/> (of <see cref="ConfigType"/>) describes.</summary>
    public IScheduler Create(SchedulerConfig config) => create(config);
}
