using System.Text;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>Line-level mutations of a text file (merges.txt): lines deleted, duplicated, swapped, replaced,
/// split into too many or too few words, invalid UTF-8, an empty file.</summary>
public static class TextMutator
{
    private static readonly string[] Replacements = ["", " ", "a", "a b c", "#version: 0.2", "\u00e9 \u6f22", "a\tb", "</w> </w>", "\uFFFD \uFFFD", new string('x', 5000) + " y"];

    public static Mutated Mutate(byte[] data, FuzzRandom random)
    {
        var lines = Encoding.UTF8.GetString(data).Split('\n').ToList();
        var at = random.Next(lines.Count);
        string description;
        switch (random.Next(7))
        {
            case 0: lines.RemoveAt(at); description = $"line {at + 1} deleted"; break;
            case 1: lines.Insert(at, lines[at]); description = $"line {at + 1} duplicated"; break;
            case 2:
            {
                var other = random.Next(lines.Count);
                (lines[at], lines[other]) = (lines[other], lines[at]);
                description = $"lines {at + 1} and {other + 1} swapped";
                break;
            }
            case 3:
            {
                var text = random.Pick(Replacements);
                lines[at] = text;
                description = $"line {at + 1} replaced by '{(text.Length > 20 ? text[..20] + "…" : text)}'";
                break;
            }
            case 4: return new([.. Encoding.UTF8.GetBytes(string.Join('\n', lines[..at])), 0xFF, 0xFE, (byte)' ', 0xC3, (byte)'\n'], $"invalid UTF-8 at line {at + 1}, rest cut");
            case 5: return new([], "emptied");
            default: return BinaryMutator.Mutate(data, random);
        }
        return new(Encoding.UTF8.GetBytes(string.Join('\n', lines)), description);
    }
}
