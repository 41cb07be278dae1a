using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// A scheduler's configuration: one derived record per scheduler class, whose JSON names are
/// diffusers' config names and whose defaults are that class's defaults. Loading follows diffusers'
/// <c>from_config</c>: <c>_class_name</c> picks the class, keys starting with "_" are metadata, keys
/// that only another scheduler class uses are ignored, keys listed in <c>_use_default_values</c> take
/// the class default; an unknown key or an unsupported value is a <see cref="SchedulerConfigException"/>
/// naming the field.
/// </summary>
public abstract record SchedulerConfig
{
    /// <summary>diffusers' class name, e.g. "DDIMScheduler".</summary>
    [JsonIgnore] public abstract string ClassName { get; }

    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    [JsonPropertyName("beta_schedule")] public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    [JsonPropertyName("prediction_type")] public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    [JsonPropertyName("timestep_spacing")] public TimestepSpacing TimestepSpacing { get; init; } = TimestepSpacing.Leading;
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    /// <summary>
    /// The keys the source file gave explicitly. They (and any value changed from the class default)
    /// carry over when the config is converted to another class; the rest take the new class's defaults.
    /// </summary>
    [JsonIgnore] public IReadOnlySet<string> ExplicitKeys { get; init; } = new HashSet<string>();

    /// <summary>
    /// Options of other scheduler classes that the source file carried (SD1.5's PNDM config has
    /// DDIM's clip_sample and set_alpha_to_one). Unused by this class, but kept, as diffusers keeps them
    /// in its config, so that converting to another class picks them up.
    /// </summary>
    [JsonIgnore] public IReadOnlyDictionary<string, JsonNode?> OtherSchedulerOptions { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>
    /// Value equality of the settings: trained betas compare element-wise; the provenance
    /// (<see cref="ExplicitKeys"/>, <see cref="OtherSchedulerOptions"/>) is not compared.
    /// </summary>
    public virtual bool Equals(SchedulerConfig? other) =>
        other is not null && EqualityContract == other.EqualityContract
        && NumTrainTimesteps == other.NumTrainTimesteps && BetaStart.Equals(other.BetaStart) && BetaEnd.Equals(other.BetaEnd)
        && BetaSchedule == other.BetaSchedule && PredictionType == other.PredictionType
        && TimestepSpacing == other.TimestepSpacing && StepsOffset == other.StepsOffset
        && (TrainedBetas is null ? other.TrainedBetas is null : other.TrainedBetas is not null && TrainedBetas.SequenceEqual(other.TrainedBetas));

    public override int GetHashCode() =>
        HashCode.Combine(EqualityContract, NumTrainTimesteps, BetaStart, BetaEnd, BetaSchedule, PredictionType, TimestepSpacing, StepsOffset);

    /// <summary>Whether the betas are rescaled to zero terminal SNR (<c>rescale_betas_zero_snr</c>, where the class has it).</summary>
    internal virtual bool RescalesBetasToZeroSnr => false;

    /// <summary>Whether the class implements the library's own "simple" timestep spacing (A1111's Simple schedule).</summary>
    protected internal virtual bool SupportsSimpleSpacing => false;

    /// <summary>The beta schedules this class implements (diffusers: only DDPM knows "sigmoid").</summary>
    protected virtual bool SupportsBetaSchedule(BetaSchedule schedule) => schedule != BetaSchedule.Sigmoid;

    /// <summary>
    /// The most training timesteps a config may declare: the schedule is computed as tensors of that length, so an
    /// absurd value would allocate gigabytes before the first step (trained models use 1000).
    /// </summary>
    public const int MaxTrainTimesteps = 100_000;

    // Options that diffusers sets to an infinity on purpose (DPM-Solver's "no clipping" default).
    private static readonly HashSet<string> MayBeInfinite = ["lambda_min_clipped"];

    /// <summary>Throws a <see cref="SchedulerConfigException"/> naming the first unusable field.</summary>
    public virtual void Validate()
    {
        // Every number is finite: a NaN ("NaN" is a JSON number literal here) would flow into every sigma unnoticed.
        foreach (var (name, property) in PropertiesOf(GetType()))
        {
            if (property.GetValue(this) is double value && !double.IsFinite(value) && !(double.IsInfinity(value) && MayBeInfinite.Contains(name)))
                throw Invalid(name, $"{value} (must be a finite number)");
        }
        if (NumTrainTimesteps < 2) throw Invalid("num_train_timesteps", $"{NumTrainTimesteps} (must be at least 2)");
        if (NumTrainTimesteps > MaxTrainTimesteps) throw Invalid("num_train_timesteps", $"{NumTrainTimesteps} (must be at most {MaxTrainTimesteps})");
        if (StepsOffset < 0) throw Invalid("steps_offset", $"{StepsOffset} (must not be negative)");
        if (TimestepSpacing == TimestepSpacing.Simple && !SupportsSimpleSpacing) throw Unsupported("timestep_spacing", TimestepSpacing);
        if (TrainedBetas is { } betas)
        {
            if (betas.Length != NumTrainTimesteps)
                throw Invalid("trained_betas", $"has {betas.Length} values but num_train_timesteps is {NumTrainTimesteps}");
            if (betas.Any(b => !(b > 0 && b < 1))) throw Invalid("trained_betas", "every beta must lie in (0, 1)");
        }
        else if (!SupportsBetaSchedule(BetaSchedule))
        {
            throw Invalid("beta_schedule", $"'{EnumName(BetaSchedule)}' is not implemented for {ClassName}");
        }
        if (!(BetaStart > 0 && BetaStart < 1)) throw Invalid("beta_start", $"{BetaStart} (betas must lie in (0, 1))");
        if (!(BetaEnd > 0 && BetaEnd < 1)) throw Invalid("beta_end", $"{BetaEnd} (betas must lie in (0, 1))");
        // The noise grows from beta_start to beta_end; reversed, the schedule ends barely noised and sampling from pure
        // noise yields a flat image. (squaredcos_cap_v2 and trained betas do not read them.)
        if (TrainedBetas is null && BetaSchedule != BetaSchedule.SquaredCosCapV2 && !(BetaStart < BetaEnd))
            throw Invalid("beta_start", $"{BetaStart} must be smaller than beta_end ({BetaEnd})");
    }

    /// <summary>Fails naming <paramref name="field"/> unless <paramref name="value"/> is positive (every number is already finite).</summary>
    protected void RequirePositive(double value, string field)
    {
        if (!(value > 0)) throw Invalid(field, $"{value} (must be positive)");
    }

    /// <summary>diffusers' dynamic thresholding options, shared by DDPM, DDIM, DPM-Solver and LCM.</summary>
    protected void ValidateThresholding(double ratio, double sampleMaxValue)
    {
        if (!(ratio > 0 && ratio <= 1)) throw Invalid("dynamic_thresholding_ratio", $"{ratio} (must be in (0, 1])");
        RequirePositive(sampleMaxValue, "sample_max_value");
    }

    protected SchedulerConfigException Invalid(string field, string detail) => new(field, detail);

    /// <summary>diffusers (≥ 0.31) refuses more than one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas.</summary>
    protected void RequireOneSigmaSpacing(bool karras, bool exponential, bool beta)
    {
        if ((karras ? 1 : 0) + (exponential ? 1 : 0) + (beta ? 1 : 0) > 1)
            throw Invalid(beta ? "use_beta_sigmas" : "use_exponential_sigmas",
                "only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true");
    }

    protected SchedulerConfigException Unsupported(string field, object value) =>
        new(field, $"{FormatValue(value)} is not supported by {ClassName} in this library");

    private static string FormatValue(object value) => value switch
    {
        Enum e => $"'{EnumName(e)}'",
        bool b => b ? "true" : "false",
        _ => $"'{value}'",
    };

    // ---- loading ----

    /// <summary>The diffusers class names this library implements (<see cref="Samplers.Classes"/>).</summary>
    public static IReadOnlyCollection<string> SupportedClassNames => Samplers.Classes.Select(c => c.Name).ToArray();

    /// <summary>The class defaults of scheduler <paramref name="className"/>.</summary>
    public static SchedulerConfig Default(string className) => Samplers.Class(className).DefaultConfig();

    // Values that diffusers itself rewrites on load (register_to_config in each class's __init__): DEIS/UniPC
    // configs loaded into DPM-Solver, DPM-Solver/UniPC configs into DEIS, DPM-Solver/DEIS configs into UniPC,
    // Euler's synonym for sample prediction. Keyed by the option's enum type, so each class rewrites only the
    // values it does not accept itself (UniPC keeps "bh1", DPM-Solver turns it into "midpoint").
    private static readonly Dictionary<(Type Enum, string Value), string> ValueAliases = new()
    {
        [(typeof(DpmAlgorithmType), "deis")] = "dpmsolver++",
        [(typeof(DpmSolverType), "logrho")] = "midpoint",
        [(typeof(DpmSolverType), "bh1")] = "midpoint",
        [(typeof(DpmSolverType), "bh2")] = "midpoint",
        [(typeof(UniPcSolverType), "midpoint")] = "bh2",
        [(typeof(UniPcSolverType), "heun")] = "bh2",
        [(typeof(UniPcSolverType), "logrho")] = "bh2",
        [(typeof(DeisAlgorithmType), "dpmsolver")] = "deis",
        [(typeof(DeisAlgorithmType), "dpmsolver++")] = "deis",
        [(typeof(DeisSolverType), "midpoint")] = "logrho",
        [(typeof(DeisSolverType), "heun")] = "logrho",
        [(typeof(DeisSolverType), "bh1")] = "logrho",
        [(typeof(DeisSolverType), "bh2")] = "logrho",
        [(typeof(PredictionType), "original_sample")] = "sample",
    };

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        Converters = { new JsonStringEnumConverter(allowIntegerValues: false) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
    };

    /// <summary>
    /// Reads a scheduler_config.json (or the one inside the folder <paramref name="path"/>, e.g. a
    /// model's scheduler/); <paramref name="className"/> overrides its <c>_class_name</c>.
    /// </summary>
    public static SchedulerConfig Load(string path, string? className = null)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "scheduler_config.json");
        string text;
        try { text = Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "scheduler config"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot read scheduler config '{path}': {e.Message}", e);
        }
        try { return Parse(text, className); }
        catch (SchedulerConfigException e) { throw new SchedulerConfigException(e.Field, $"{StripPrefix(e)} (in {path})", e); }
    }

    private static string StripPrefix(SchedulerConfigException e) => e.Message[(e.Message.IndexOf(": ", StringComparison.Ordinal) + 2)..];

    /// <summary>Parses the text of a scheduler_config.json; <paramref name="className"/> overrides its <c>_class_name</c>.</summary>
    public static SchedulerConfig Parse(string json, string? className = null)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(QuoteNonFiniteLiterals(json)); }
        catch (JsonException e) { throw new SchedulerConfigException("(file)", $"not valid JSON: {e.Message}", e); }
        return FromJson(node as JsonObject ?? throw new SchedulerConfigException("(file)", "a scheduler config must be a JSON object"), className);
    }

    /// <summary>Builds the typed config of <paramref name="className"/> (default: the object's <c>_class_name</c>).</summary>
    public static SchedulerConfig FromJson(JsonObject json, string? className = null)
    {
        className ??= json["_class_name"] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new SchedulerConfigException("_class_name", "missing: the config does not say which scheduler it configures");
        var prototype = Default(className);
        var type = prototype.GetType();
        var own = PropertiesOf(type);
        var usedDefaults = new HashSet<string>(StringComparer.Ordinal);
        if (json["_use_default_values"] is JsonArray defaults)
            foreach (var d in defaults) if (d is JsonValue dv && dv.TryGetValue<string>(out var name)) usedDefaults.Add(name);

        var kept = new JsonObject();
        var explicitKeys = new HashSet<string>(StringComparer.Ordinal);
        var others = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (key, value) in json)
        {
            if (key.StartsWith('_')) continue;
            if (!own.TryGetValue(key, out var property))
            {
                if (!KnownConfigKeys.All.Contains(key))
                    throw new SchedulerConfigException(key, "unknown field: no diffusers scheduler has this option");
                // another scheduler's option (configs are shared between classes): unused here, kept
                if (!usedDefaults.Contains(key)) others[key] = value?.DeepClone();
                continue;
            }
            if (usedDefaults.Contains(key)) continue;
            kept[key] = CheckValue(key, property, value?.DeepClone());
            explicitKeys.Add(key);
        }

        SchedulerConfig config;
        try
        {
            config = (SchedulerConfig)(kept.Deserialize(type, JsonOptions) ?? throw new JsonException("null config"));
        }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.').Split('[', '.')[0] : "(file)";
            throw new SchedulerConfigException(field, $"cannot read the value: {e.Message}", e);
        }
        config = config with { ExplicitKeys = explicitKeys, OtherSchedulerOptions = others };
        config.Validate();
        return config;
    }

    /// <summary>
    /// This config as diffusers would save it: every field, the other schedulers' options it carries,
    /// <c>_class_name</c> and <c>_use_default_values</c> (the fields neither given explicitly nor changed
    /// from the default).
    /// </summary>
    public JsonObject ToJson()
    {
        var node = JsonSerializer.SerializeToNode(this, GetType(), JsonOptions)!.AsObject();
        var defaults = JsonSerializer.SerializeToNode(Default(ClassName), GetType(), JsonOptions)!.AsObject();
        var result = new JsonObject { ["_class_name"] = ClassName };
        var useDefaults = new JsonArray();
        foreach (var (key, value) in node)
        {
            result[key] = value?.DeepClone();
            if (!ExplicitKeys.Contains(key) && JsonNode.DeepEquals(value, defaults[key])) useDefaults.Add(key);
        }
        foreach (var (key, value) in OtherSchedulerOptions)
            if (!result.ContainsKey(key)) result[key] = value?.DeepClone();
        result["_use_default_values"] = useDefaults;
        return result;
    }

    /// <summary>
    /// This config for another scheduler class (diffusers' <c>Other.from_config(config)</c>): explicit or
    /// changed values of shared fields carry over, the rest take <paramref name="className"/>'s defaults.
    /// <paramref name="overrides"/> (config names → JSON values) are applied on top and must be fields of
    /// the target class.
    /// </summary>
    public SchedulerConfig ConvertTo(string className, IReadOnlyDictionary<string, JsonNode?>? overrides = null)
    {
        var json = ToJson();
        if (overrides is not null && overrides.Count > 0)
        {
            var own = PropertiesOf(Default(className).GetType());
            var useDefaults = (JsonArray)json["_use_default_values"]!;
            foreach (var (key, value) in overrides)
            {
                if (!own.ContainsKey(key)) throw new SchedulerConfigException(key, $"not an option of {className}");
                json[key] = value?.DeepClone();
                foreach (var d in useDefaults.Where(d => d?.GetValue<string>() == key).ToList()) useDefaults.Remove(d);
            }
        }
        return FromJson(json, className);
    }

    /// <summary>The JSON text of <see cref="ToJson"/>.</summary>
    public string ToJsonString() => ToJson().ToJsonString(JsonOptions);

    // ---- helpers ----

    private static readonly ConcurrentDictionary<Type, IReadOnlyDictionary<string, PropertyInfo>> PropertyCache = new();

    /// <summary>Config name → property of a config record type.</summary>
    internal static IReadOnlyDictionary<string, PropertyInfo> PropertiesOf(Type type) => PropertyCache.GetOrAdd(type, t =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Property: p, Name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name))
            .Where(x => x.Name is not null)
            .ToDictionary(x => x.Name!, x => x.Property, StringComparer.Ordinal));

    /// <summary>Enum options must be one of the names diffusers knows; the error lists them.</summary>
    private static JsonNode? CheckValue(string key, PropertyInfo property, JsonNode? value)
    {
        var enumType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        if (!enumType.IsEnum) return value;
        if (value is null)
        {
            if (Nullable.GetUnderlyingType(property.PropertyType) is not null) return null;
            throw new SchedulerConfigException(key, $"null is not allowed (expected one of {string.Join(", ", EnumNames(enumType))})");
        }
        if (value is not JsonValue jv || !jv.TryGetValue<string>(out var text))
            throw new SchedulerConfigException(key, $"expected a string, one of {string.Join(", ", EnumNames(enumType))}");
        if (ValueAliases.TryGetValue((enumType, text), out var alias)) text = alias;
        if (!EnumNames(enumType).Contains(text, StringComparer.Ordinal))
            throw new SchedulerConfigException(key, $"unsupported value '{text}' (expected one of {string.Join(", ", EnumNames(enumType))})");
        return JsonValue.Create(text);
    }

    private static IEnumerable<string> EnumNames(Type enumType) =>
        enumType.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => f.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? f.Name);

    /// <summary>The config spelling of an enum value, e.g. ScaledLinear → "scaled_linear".</summary>
    public static string EnumName(Enum value)
    {
        var field = value.GetType().GetField(value.ToString());
        return field?.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? value.ToString();
    }

    /// <summary>
    /// Python's json module writes -inf as a bare <c>-Infinity</c> (e.g. DPM-Solver's
    /// lambda_min_clipped), which is not JSON; quote such literals so they read as named numbers.
    /// </summary>
    private static string QuoteNonFiniteLiterals(string json)
    {
        if (!json.Contains("Infinity", StringComparison.Ordinal) && !json.Contains("NaN", StringComparison.Ordinal)) return json;
        var sb = new StringBuilder(json.Length + 8);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            var literal = new[] { "-Infinity", "Infinity", "NaN" }.FirstOrDefault(l => string.CompareOrdinal(json, i, l, 0, l.Length) == 0);
            if (literal is not null)
            {
                sb.Append('"').Append(literal).Append('"');
                i += literal.Length - 1;
                continue;
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
