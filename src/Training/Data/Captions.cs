namespace LatentDiffusion.Training.Data;

/// <summary>One name of a Fashion-MNIST class: singular and plural ("sneaker", "sneakers"), or a
/// plural-only noun ("trousers") whose singular phrase is "a pair of red trousers".</summary>
public sealed record ClassNoun(string Singular, string Plural)
{
    public bool PluralOnly => Singular == Plural;

    public static ClassNoun Of(string singular, string? plural = null) => new(singular, plural ?? singular + "s");
    public static ClassNoun PluralOnlyNoun(string plural) => new(plural, plural);

    /// <summary>"a red sneaker", "an orange ankle boot", "a pair of red trousers", or without a colour "a sneaker".</summary>
    public string WithArticle(string? colour)
    {
        var coloured = colour is null ? Plural : $"{colour} {Plural}";
        if (PluralOnly) return $"a pair of {coloured}";
        var phrase = colour is null ? Singular : $"{colour} {Singular}";
        return $"{Captions.Article(phrase)} {phrase}";
    }

    /// <summary>"red sneakers", or without a colour "sneakers".</summary>
    public string PluralPhrase(string? colour) => colour is null ? Plural : $"{colour} {Plural}";
}

/// <summary>A caption template; which of class and colour it names.</summary>
public sealed record CaptionTemplate(string Name, bool NamesClass, bool NamesColour, Func<ClassNoun?, string?, string> Render, double Weight);

/// <summary>
/// The captions of the "Fashion colours" data: templates with synonyms, e.g. "a red sneaker",
/// "a photo of a red sneaker", "red trainers", "a sneaker" (colour left out), "something red"
/// (class left out). <see cref="Corpus"/> lists every caption the templates can make (the input of
/// the BPE vocabulary learner).
/// </summary>
public static class Captions
{
    /// <summary>Names of each class (Fashion-MNIST's order); the first is the canonical one used in prompts.</summary>
    public static readonly IReadOnlyList<IReadOnlyList<ClassNoun>> ClassNouns =
    [
        [ClassNoun.Of("t-shirt"), ClassNoun.Of("tee"), ClassNoun.Of("top")],
        [ClassNoun.PluralOnlyNoun("trousers"), ClassNoun.PluralOnlyNoun("pants"), ClassNoun.PluralOnlyNoun("jeans")],
        [ClassNoun.Of("pullover"), ClassNoun.Of("sweater"), ClassNoun.Of("jumper")],
        [ClassNoun.Of("dress", "dresses")],
        [ClassNoun.Of("coat"), ClassNoun.Of("jacket")],
        [ClassNoun.Of("sandal")],
        [ClassNoun.Of("shirt"), ClassNoun.Of("blouse")],
        [ClassNoun.Of("sneaker"), ClassNoun.Of("trainer"), ClassNoun.Of("running shoe")],
        [ClassNoun.Of("bag"), ClassNoun.Of("handbag"), ClassNoun.Of("purse")],
        [ClassNoun.Of("ankle boot"), ClassNoun.Of("boot")],
    ];

    /// <summary>
    /// The templates with their sampling weights: most captions name both class and colour, one in
    /// ten leaves the colour out and one in ten the class, so that the text encoder learns the words
    /// apart as well as together.
    /// </summary>
    public static readonly IReadOnlyList<CaptionTemplate> Templates =
    [
        new("a {colour} {class}", true, true, (n, c) => n!.WithArticle(c), 0.30),
        new("a photo of a {colour} {class}", true, true, (n, c) => $"a photo of {n!.WithArticle(c)}", 0.15),
        new("a picture of a {colour} {class}", true, true, (n, c) => $"a picture of {n!.WithArticle(c)}", 0.10),
        new("{colour} {classes}", true, true, (n, c) => n!.PluralPhrase(c), 0.15),
        new("a {class} in {colour}", true, true, (n, c) => $"{n!.WithArticle(null)} in {c}", 0.10),
        new("a {class}", true, false, (n, _) => n!.WithArticle(null), 0.06),
        new("a photo of a {class}", true, false, (n, _) => $"a photo of {n!.WithArticle(null)}", 0.04),
        new("something {colour}", false, true, (_, c) => $"something {c}", 0.06),
        new("a {colour} thing", false, true, (_, c) => $"{Article(c!)} {c} thing", 0.04),
    ];

    /// <summary>The canonical prompt of a class and colour: "a red sneaker", "a pair of blue trousers".</summary>
    public static string Canonical(int classIndex, string colour) => ClassNouns[classIndex][0].WithArticle(colour);

    /// <summary>"an" before a vowel sound ("an orange", "an ankle boot"), else "a".</summary>
    public static string Article(string phrase) => phrase.Length > 0 && "aeiou".Contains(char.ToLowerInvariant(phrase[0])) ? "an" : "a";

    /// <summary>
    /// The caption for a class and colour chosen by two uniform numbers in [0, 1): one picks the
    /// template (by weight), the other the synonym. Never empty.
    /// </summary>
    public static string Sample(int classIndex, string colour, double templateDraw, double synonymDraw)
    {
        var template = Pick(Templates, t => t.Weight, templateDraw);
        var nouns = ClassNouns[classIndex];
        var noun = nouns[Math.Min(nouns.Count - 1, (int)(synonymDraw * nouns.Count))];
        return template.Render(template.NamesClass ? noun : null, template.NamesColour ? colour : null);
    }

    /// <summary>
    /// Every distinct caption the templates make for these colours (and the empty caption excluded),
    /// leaving out any that names a held-out (class, colour) pair together, in a stable order.
    /// </summary>
    public static IEnumerable<string> Corpus(IReadOnlyList<string> colours, Func<int, string, bool>? isHeldOut = null)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var template in Templates)
            for (int k = 0; k < ClassNouns.Count; k++)
                foreach (var noun in ClassNouns[k])
                    foreach (var colour in colours)
                    {
                        if (template.NamesClass && template.NamesColour && isHeldOut is not null && isHeldOut(k, colour)) continue;
                        var caption = template.Render(template.NamesClass ? noun : null, template.NamesColour ? colour : null);
                        if (seen.Add(caption)) yield return caption;
                    }
    }

    private static T Pick<T>(IReadOnlyList<T> items, Func<T, double> weight, double draw)
    {
        var total = items.Sum(weight);
        var target = draw * total;
        foreach (var item in items)
        {
            target -= weight(item);
            if (target < 0) return item;
        }
        return items[^1];
    }
}
