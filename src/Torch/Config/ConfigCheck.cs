namespace LatentDiffusion.Torch.Config;

/// <summary>
/// The checks a config record's <c>Validate</c> makes, each failing with one <see cref="ConfigException"/>
/// worded the same way everywhere: "<c>{source}: field '{name}' {why}</c>". A model is only built from
/// values that pass, so a bad config.json never reaches a division by zero, an array index or libtorch.
/// </summary>
public readonly struct ConfigCheck(string source)
{
    public string Source => source;

    /// <summary>
    /// Runs <paramref name="validate"/>; a <see cref="ConfigException"/> it throws without naming the source (the
    /// shared block checks know only the field) is rethrown naming it.
    /// </summary>
    public static void Run(string source, Action<ConfigCheck> validate)
    {
        try
        {
            validate(new ConfigCheck(source));
        }
        catch (ConfigException e) when (!e.Message.StartsWith(source, StringComparison.Ordinal))
        {
            throw new ConfigException($"{source}: {e.Message}", e);
        }
    }

    public ConfigException Fail(string field, string why) => new($"{source}: field '{field}' {why}");

    /// <summary>Fails with <paramref name="why"/> unless <paramref name="ok"/>.</summary>
    public void That(bool ok, string field, string why)
    {
        if (!ok) throw Fail(field, why);
    }

    public void Positive(int value, string field) => That(value > 0, field, $"must be positive (got {value})");

    /// <summary>Null passes (an optional value); a given one must be positive.</summary>
    public void Positive(int? value, string field)
    {
        if (value is { } v) Positive(v, field);
    }

    public void NotNegative(int value, string field) => That(value >= 0, field, $"must not be negative (got {value})");

    public void Finite(double value, string field) => That(double.IsFinite(value), field, $"must be a finite number (got {value})");

    public void PositiveFinite(double value, string field) =>
        That(value > 0 && double.IsFinite(value), field, $"must be a positive finite number (got {value})");

    public void NotNegativeFinite(double value, string field) =>
        That(value >= 0 && double.IsFinite(value), field, $"must be a finite number ≥ 0 (got {value})");

    /// <summary><paramref name="value"/> in the closed interval [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public void InRange(double value, string field, double min, double max) =>
        That(value >= min && value <= max, field, $"must be in [{min}, {max}] (got {value})");

    /// <summary>A list that is present, not empty, and (when <paramref name="length"/> is given) of that length.</summary>
    public T[] List<T>(T[]? values, string field, int? length = null, string? lengthOf = null)
    {
        if (values is null) throw Fail(field, "must be a list, not null");
        if (values.Length == 0) throw Fail(field, "must not be empty");
        if (length is { } n && values.Length != n)
            throw Fail(field, $"has {values.Length} entries but {lengthOf ?? "the model"} has {n}");
        return values;
    }

    /// <summary>A list of positive counts (<see cref="List{T}"/>'s conditions, and every entry &gt; 0).</summary>
    public int[] PositiveList(int[]? values, string field, int? length = null, string? lengthOf = null)
    {
        List(values, field, length, lengthOf);
        for (var i = 0; i < values!.Length; i++) Positive(values[i], $"{field}[{i}]");
        return values;
    }

    /// <summary>A list of names, none of them null (System.Text.Json leaves a JSON null inside an array as it is).</summary>
    public string[] NameList(string[]? values, string field, int? length = null, string? lengthOf = null)
    {
        List(values, field, length, lengthOf);
        for (var i = 0; i < values!.Length; i++) That(values[i] is not null, $"{field}[{i}]", "must be a string, not null");
        return values;
    }

    /// <summary>One of the <paramref name="allowed"/> strings (compared exactly); the error lists them.</summary>
    public void OneOf(string? value, string field, params string[] allowed) =>
        That(value is not null && allowed.Contains(value), field,
            $"is {(value is null ? "null" : $"\"{value}\"")}; supported: {string.Join(", ", allowed.Select(a => $"\"{a}\""))}");

    /// <summary><paramref name="value"/> (of <paramref name="valueField"/>) is a multiple of <paramref name="divisor"/>.</summary>
    public void Divisible(int value, string valueField, int divisor, string divisorField) =>
        That(divisor > 0 && value % divisor == 0, divisorField, $"({divisor}) must divide {valueField} ({value})");
}
