using System.Globalization;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Writes JSON byte for byte as Python's <c>json.dumps(obj, indent=2, sort_keys=True,
/// ensure_ascii=False)</c>, the call transformers' <c>save_pretrained</c> uses, so files we write
/// are indistinguishable from transformers'. Objects are dictionaries with string keys; values are
/// strings, integers, booleans, null or nested dictionaries.
/// </summary>
internal static class PythonJson
{
    public static string Serialize(IReadOnlyDictionary<string, object?> value)
    {
        var builder = new StringBuilder();
        Write(builder, value, 0);
        return builder.ToString();
    }

    private static void Write(StringBuilder builder, object? value, int depth)
    {
        switch (value)
        {
            case null:
                builder.Append("null");
                break;
            case bool b:
                builder.Append(b ? "true" : "false");
                break;
            case int or long:
                builder.Append(Convert.ToInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
                break;
            case string s:
                WriteString(builder, s);
                break;
            case IReadOnlyDictionary<string, object?> obj:
                WriteObject(builder, obj, depth);
                break;
            default:
                throw new ArgumentException($"cannot write {value.GetType().Name} as JSON");
        }
    }

    private static void WriteObject(StringBuilder builder, IReadOnlyDictionary<string, object?> obj, int depth)
    {
        if (obj.Count == 0)
        {
            builder.Append("{}");
            return;
        }
        builder.Append('{');
        var first = true;
        // Python sorts keys by code point; ordinal UTF-16 order agrees outside the surrogate range.
        foreach (var key in obj.Keys.Order(StringComparer.Ordinal))
        {
            if (!first) builder.Append(',');
            first = false;
            builder.Append('\n').Append(' ', 2 * (depth + 1));
            WriteString(builder, key);
            builder.Append(": ");
            Write(builder, obj[key], depth + 1);
        }
        builder.Append('\n').Append(' ', 2 * depth).Append('}');
    }

    private static void WriteString(StringBuilder builder, string s)
    {
        builder.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                case '\b': builder.Append("\\b"); break;
                case '\f': builder.Append("\\f"); break;
                case < ' ': builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: builder.Append(c); break;
            }
        }
        builder.Append('"');
    }
}
