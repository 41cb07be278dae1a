using System.Text.Json;
using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// A config value that diffusers accepts either once for every block (<c>"layers_per_block": 2</c>) or
/// as a list with one entry per block (<c>"attention_head_dim": [5, 10, 20, 20]</c>). It is written
/// back in the form it was read, so a saved config.json stays what diffusers expects.
/// </summary>
[JsonConverter(typeof(OneOrManyJsonConverterFactory))]
public sealed class OneOrMany<T> : IEquatable<OneOrMany<T>>
{
    private readonly T single = default!;
    private readonly T[]? many;

    public OneOrMany(T value) => single = value;

    public OneOrMany(IEnumerable<T> values) => many = values.ToArray();

    /// <summary>True when the config gave a list.</summary>
    public bool IsList => many is not null;

    /// <summary>The list given, or null when the config gave one value.</summary>
    public IReadOnlyList<T>? List => many;

    /// <summary>The single value given (an error when the config gave a list).</summary>
    public T Value => many is null ? single : throw new InvalidOperationException("this config value is a list");

    /// <summary>The values for <paramref name="count"/> blocks; a list must have exactly that many entries.</summary>
    public T[] PerBlock(int count, string field)
    {
        if (many is null) return Enumerable.Repeat(single, count).ToArray();
        if (many.Length != count)
            throw ConfigErrors.Invalid(field, $"lists {many.Length} values but the model has {count} blocks");
        return (T[])many.Clone();
    }

    public static implicit operator OneOrMany<T>(T value) => new(value);

    public static implicit operator OneOrMany<T>(T[] values) => new(values);

    public bool Equals(OneOrMany<T>? other) =>
        other is not null && (many is null
            ? other.many is null && EqualityComparer<T>.Default.Equals(single, other.single)
            : other.many is not null && many.SequenceEqual(other.many));

    public override bool Equals(object? obj) => Equals(obj as OneOrMany<T>);

    public override int GetHashCode() => many is null ? HashCode.Combine(single) : many.Length;

    public override string ToString() => many is null ? $"{single}" : $"[{string.Join(", ", many)}]";
}

/// <summary>Reads and writes <see cref="OneOrMany{T}"/> as a JSON value or a JSON array.</summary>
public sealed class OneOrManyJsonConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(OneOrMany<>);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(Converter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;

    private sealed class Converter<T> : JsonConverter<OneOrMany<T>>
    {
        public override OneOrMany<T> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            try
            {
                if (reader.TokenType == JsonTokenType.StartArray)
                    return new OneOrMany<T>(JsonSerializer.Deserialize<T[]>(ref reader, options) ?? []);
                var value = JsonSerializer.Deserialize<T>(ref reader, options);
                return new OneOrMany<T>(value!);
            }
            catch (JsonException e)
            {
                // The nested read reports the path "$"; an exception without a path gets the property's from the serializer.
                throw new JsonException(e.Message, e);
            }
        }

        public override void Write(Utf8JsonWriter writer, OneOrMany<T> value, JsonSerializerOptions options)
        {
            if (value.List is { } list) JsonSerializer.Serialize(writer, list.ToArray(), options);
            else JsonSerializer.Serialize(writer, value.Value, options);
        }
    }
}
