using System.Globalization;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>A piece of prompt text with its emphasis, or a <c>BREAK</c> (start a new 75-token chunk).</summary>
public readonly record struct PromptFragment(string Text, double Weight, bool IsBreak = false)
{
    public static PromptFragment Break { get; } = new("BREAK", 1.0, IsBreak: true);
}

/// <summary>
/// AUTOMATIC1111's prompt-emphasis syntax (its <c>parse_prompt_attention</c>), reimplemented:
/// <list type="bullet">
/// <item><c>(text)</c> multiplies the weight by 1.1, <c>[text]</c> divides it by 1.1, nesting multiplies;</item>
/// <item><c>(text:1.3)</c> multiplies by the given number;</item>
/// <item><c>\(</c> <c>\)</c> <c>\[</c> <c>\]</c> <c>\\</c> are literal characters; a lone backslash is dropped;</item>
/// <item>brackets left open apply to the rest of the prompt; unmatched closers are text;</item>
/// <item>the word <c>BREAK</c> (upper case, whole word) starts a new chunk;</item>
/// <item>neighbouring fragments with equal weights are joined (they are tokenised together).</item>
/// </list>
/// Two deliberate differences: a weight that is not a number (<c>(a:1.2.3)</c>) is kept as text
/// where AUTOMATIC1111 raises, and a BREAK inside brackets still counts as a BREAK.
/// </summary>
public static class PromptAttention
{
    public const double RoundBracketMultiplier = 1.1;
    public const double SquareBracketMultiplier = 1 / 1.1;

    public static IReadOnlyList<PromptFragment> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var result = new List<PromptFragment>();
        var round = new List<int>();
        var square = new List<int>();
        var i = 0;
        while (i < prompt.Length)
        {
            var c = prompt[i];
            switch (c)
            {
                case '\\':
                    var escaped = i + 1 < prompt.Length && prompt[i + 1] is '(' or ')' or '[' or ']' or '\\';
                    result.Add(new PromptFragment(escaped ? prompt[i + 1].ToString() : "", 1.0));
                    i += escaped ? 2 : 1;
                    break;
                case '(':
                    round.Add(result.Count);
                    i++;
                    break;
                case '[':
                    square.Add(result.Count);
                    i++;
                    break;
                case ':':
                    if (TryMatchWeight(prompt, i, out var length, out var weight) && round.Count > 0)
                    {
                        Multiply(result, Pop(round), weight);
                        i += length;
                    }
                    else
                    {
                        var textLength = length > 0 ? length : 1; // an explicit weight without '(' is text
                        AddText(result, prompt.Substring(i, textLength));
                        i += textLength;
                    }
                    break;
                case ')' when round.Count > 0:
                    Multiply(result, Pop(round), RoundBracketMultiplier);
                    i++;
                    break;
                case ']' when square.Count > 0:
                    Multiply(result, Pop(square), SquareBracketMultiplier);
                    i++;
                    break;
                case ')' or ']':
                    AddText(result, c.ToString());
                    i++;
                    break;
                default:
                    var end = prompt.IndexOfAny(['\\', '(', ')', '[', ']', ':'], i);
                    if (end < 0) end = prompt.Length;
                    AddText(result, prompt[i..end]);
                    i = end;
                    break;
            }
        }
        foreach (var start in round) Multiply(result, start, RoundBracketMultiplier);
        foreach (var start in square) Multiply(result, start, SquareBracketMultiplier);
        if (result.Count == 0) result.Add(new PromptFragment("", 1.0));
        return JoinEqualWeights(result);
    }

    // `:\s*([+-]?[.\d]+)\s*\)` at `start`. Length is set whenever the pattern matches, even when the
    // number does not parse; the weight only when it does.
    private static bool TryMatchWeight(string s, int start, out int length, out double weight)
    {
        length = 0;
        weight = 0;
        var i = start + 1;
        while (i < s.Length && PythonText.IsWhiteSpace(s[i])) i++;
        var number = new StringBuilder();
        if (i < s.Length && s[i] is '+' or '-') number.Append(s[i++]);
        var digitsStart = i;
        while (i < s.Length && (s[i] == '.' || char.IsDigit(s[i])))
        {
            number.Append(s[i] == '.' ? '.' : (char)('0' + (int)char.GetNumericValue(s[i])));
            i++;
        }
        if (i == digitsStart) return false;
        while (i < s.Length && PythonText.IsWhiteSpace(s[i])) i++;
        if (i >= s.Length || s[i] != ')') return false;
        length = i + 1 - start;
        return double.TryParse(number.ToString(), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out weight);
    }

    private static int Pop(List<int> stack)
    {
        var top = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return top;
    }

    private static void Multiply(List<PromptFragment> fragments, int start, double multiplier)
    {
        for (var p = start; p < fragments.Count; p++)
        {
            if (!fragments[p].IsBreak) fragments[p] = fragments[p] with { Weight = fragments[p].Weight * multiplier };
        }
    }

    // Plain text, split at BREAK (regex \s*\bBREAK\b\s*); the pieces keep weight 1 until brackets close.
    private static void AddText(List<PromptFragment> fragments, string text)
    {
        var pieceStart = 0;
        var search = 0;
        while (true)
        {
            var at = text.IndexOf("BREAK", search, StringComparison.Ordinal);
            if (at < 0) break;
            var after = at + 5;
            if ((at > 0 && IsWordChar(text[at - 1])) || (after < text.Length && IsWordChar(text[after])))
            {
                search = at + 1;
                continue;
            }
            var cutStart = at;
            while (cutStart > pieceStart && PythonText.IsWhiteSpace(text[cutStart - 1])) cutStart--;
            var cutEnd = after;
            while (cutEnd < text.Length && PythonText.IsWhiteSpace(text[cutEnd])) cutEnd++;
            fragments.Add(new PromptFragment(text[pieceStart..cutStart], 1.0));
            fragments.Add(PromptFragment.Break);
            pieceStart = search = cutEnd;
        }
        fragments.Add(new PromptFragment(text[pieceStart..], 1.0));
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    private static List<PromptFragment> JoinEqualWeights(List<PromptFragment> fragments)
    {
        var joined = new List<PromptFragment>(fragments.Count);
        foreach (var fragment in fragments)
        {
            if (joined.Count > 0 && !fragment.IsBreak && !joined[^1].IsBreak && joined[^1].Weight == fragment.Weight)
                joined[^1] = joined[^1] with { Text = joined[^1].Text + fragment.Text };
            else
                joined.Add(fragment);
        }
        return joined;
    }
}
