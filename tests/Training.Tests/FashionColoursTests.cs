using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Training.Data;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>Fashion-MNIST splits loaded once for the data tests of this file.</summary>
public sealed class FashionMnistSplits
{
    public FashionMnist Train { get; } = FashionMnist.Load(train: true);
    public FashionMnist Test { get; } = FashionMnist.Load(train: false);
}

public class FashionColoursTests(FashionMnistSplits splits) : IClassFixture<FashionMnistSplits>
{
    private static readonly string[] ColourNames = FashionColours.Colours.Select(c => c.Name).ToArray();

    [Fact]
    public void ColoursAndCaptionsAreDeterministicInTheSeed()
    {
        var a = new FashionColours(splits.Train, train: true);
        var b = new FashionColours(splits.Train, train: true);
        var other = new FashionColours(splits.Train, train: true, FashionColoursOptions.Default with { Seed = 7 });
        var differentColour = 0;
        for (int i = 0; i < 2000; i++)
        {
            Assert.Equal(a.Item(i), b.Item(i));
            Assert.Equal(a.Item(i, epoch: 3), b.Item(i, epoch: 3));
            Assert.Equal(splits.Train.Labels[i], a.Class(i));
            if (a.Colour(i) != other.Colour(i)) differentColour++;
        }
        // Another seed re-draws the colours (7 in 8 differ by chance); another epoch re-draws captions.
        Assert.InRange(differentColour, 1500, 1950);
        Assert.Contains(Enumerable.Range(0, 100), i => a.Caption(i, 0) != a.Caption(i, 1));
        using var scope = DisposeScope.Enter();
        Assert.True(a.Images([0, 5, 9]).Equal(b.Images([0, 5, 9])));
    }

    [Fact]
    public void HeldOutCombinationsNeverAppearInTheTrainingSplit()
    {
        var train = new FashionColours(splits.Train, train: true);
        Assert.False(train.IncludesHeldOut);
        Assert.Equal(6, train.HeldOut.Count);
        var seen = new int[10, 8];
        for (int i = 0; i < train.Count; i++) seen[train.Class(i), train.Colour(i)]++;
        foreach (var (c, k) in train.HeldOut) Assert.Equal(0, seen[c, k]);
        // Every other combination occurs, about 6000/8 times (a held-out colour's share goes to the other seven).
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < 8; k++)
                if (!train.IsHeldOut(c, k)) Assert.InRange(seen[c, k], 600, 960);

        // The training captions never name a held-out pair together (whichever template and synonym).
        bool NamesHeldOut(string caption) => train.HeldOut.Any(h =>
            caption.Split(' ').Contains(ColourNames[h.Colour]) && Captions.ClassNouns[h.Class].Any(n => caption.Contains(n.Singular, StringComparison.Ordinal)));
        Assert.True(NamesHeldOut("a sneaker in green"));
        Assert.True(NamesHeldOut("a pair of red trousers"));
        for (int i = 0; i < train.Count; i += 7) Assert.False(NamesHeldOut(train.Caption(i)), train.Caption(i));
        Assert.DoesNotContain(train.CaptionCorpus(), NamesHeldOut);

        // The test split and a judge's training split hold all 80 combinations.
        foreach (var all in new[] { new FashionColours(splits.Test, train: false), new FashionColours(splits.Train, train: true, includeHeldOut: true) })
        {
            var counts = new int[10, 8];
            for (int i = 0; i < all.Count; i++) counts[all.Class(i), all.Colour(i)]++;
            Assert.All(counts.Cast<int>(), n => Assert.True(n > 50, $"only {n} items of a combination"));
        }
    }

    [Fact]
    public void TintIsInkTimesColourOverTheBackground()
    {
        // A synthetic ink image: full ink in the top half, none in the bottom, a grey band of 51 in row 20.
        var ink = new byte[28 * 28];
        for (int y = 0; y < 14; y++) for (int x = 0; x < 28; x++) ink[y * 28 + x] = 255;
        for (int x = 0; x < 28; x++) ink[20 * 28 + x] = 51;
        var chw = new float[3 * 32 * 32];
        foreach (var colour in FashionColours.Colours)
        {
            FashionColours.Render(ink, colour, chw);
            var fg = new[] { colour.R, colour.G, colour.B };
            var bg = new[] { FashionColours.Background.R, FashionColours.Background.G, FashionColours.Background.B };
            for (int ch = 0; ch < 3; ch++)
            {
                float At(int y, int x) => chw[ch * 1024 + y * 32 + x];
                float Expected(double v) => (float)(v / 127.5 - 1);
                Assert.Equal(Expected(fg[ch]), At(2 + 5, 2 + 5), 5);          // full ink: exactly the colour
                Assert.Equal(Expected(bg[ch]), At(2 + 25, 2 + 5), 5);         // no ink: the background
                Assert.Equal(Expected(bg[ch]), At(0, 0), 5);                  // padding: the background
                Assert.Equal(Expected(bg[ch]), At(31, 31), 5);
                Assert.Equal(Expected(bg[ch] + 0.2 * (fg[ch] - bg[ch])), At(2 + 20, 10), 5); // 51/255 = 20% ink
                Assert.All(chw, v => Assert.InRange(v, -1f, 1f));
            }
        }

        // A real item: its mean colour over inked pixels points in the direction of its colour.
        var data = new FashionColours(splits.Test, train: false);
        using var scope = DisposeScope.Enter();
        var images = data.Images([0, 1, 2, 3]);
        Assert.Equal([4L, 3, 32, 32], images.Shape);
        var pixels = images.ToArray<float>();
        for (int n = 0; n < 4; n++)
        {
            var colour = FashionColours.Colours[data.Colour(n)];
            var image = data.Source.Image(n);
            var sums = new double[3];
            for (int p = 0; p < 28 * 28; p++)
            {
                if (image[p] < 200) continue;
                var (y, x) = (p / 28 + 2, p % 28 + 2);
                for (int ch = 0; ch < 3; ch++) sums[ch] += (pixels[n * 3072 + ch * 1024 + y * 32 + x] + 1) * 127.5;
            }
            var inked = sums.Max();
            var expected = new double[] { colour.R, colour.G, colour.B };
            for (int ch = 0; ch < 3; ch++)
                Assert.InRange(sums[ch] / inked, expected[ch] / expected.Max() - 0.1, expected[ch] / expected.Max() + 0.1);
        }
        // Flipping mirrors columns.
        var plain = new float[3072];
        var flipped = new float[3072];
        data.Render(0, plain);
        data.Render(0, flipped, flip: true);
        Assert.Equal(plain[5 * 32 + 3], flipped[5 * 32 + 28]);
    }

    [Fact]
    public void EveryTemplateAndSynonymIsUsedAndNamesWhatItShould()
    {
        var data = new FashionColours(splits.Train, train: true);
        var captions = Enumerable.Range(0, 20000).Select(i => (Item: data.Item(i), Caption: data.Caption(i))).Where(x => x.Caption.Length > 0).ToList();
        foreach (var (item, caption) in captions)
        {
            var colour = ColourNames[item.Colour];
            var namesColour = caption.Split(' ').Contains(colour);
            var nouns = Captions.ClassNouns[item.Class];
            var namesClass = nouns.Any(n => caption.Contains(n.Singular, StringComparison.Ordinal));
            Assert.True(namesColour || namesClass, caption);
            // A caption never names a wrong colour.
            Assert.DoesNotContain(ColourNames.Where(c => c != colour), c => caption.Split(' ').Contains(c));
        }
        var texts = captions.Select(c => c.Caption).ToHashSet();
        // Colour left out, class left out, plural and photo templates all occur…
        Assert.Contains(texts, t => t.StartsWith("something ", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("a photo of ", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains(" in ", StringComparison.Ordinal));
        Assert.Contains(texts, t => !ColourNames.Any(c => t.Split(' ').Contains(c)));
        // … and every synonym of every class.
        foreach (var noun in Captions.ClassNouns.SelectMany(n => n))
            Assert.Contains(texts, t => t.Contains(noun.Plural, StringComparison.Ordinal) || t.Contains(noun.Singular, StringComparison.Ordinal));

        var corpus = data.CaptionCorpus().ToHashSet();
        foreach (var expected in new[] { "a red sneaker", "a photo of a red sneaker", "red trainers", "a sneaker", "something red", "an orange ankle boot",
                     "a pair of blue trousers", "an orange thing", "a photo of an ankle boot", "white running shoes", "a tee in purple", "a picture of a yellow purse" })
            Assert.Contains(expected, corpus);
        Assert.DoesNotContain("", corpus);
        Assert.Equal(corpus.Count, data.CaptionCorpus().Count());
        Assert.Equal("a red sneaker", Captions.Canonical(7, "red"));
        Assert.Equal("a pair of green jeans", Captions.ClassNouns[1][2].WithArticle("green"));
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.3)]
    [InlineData(0.0)]
    public void EmptyCaptionFractionIsAsConfigured(double fraction)
    {
        var data = new FashionColours(splits.Train, train: true, FashionColoursOptions.Default with { EmptyCaptionFraction = fraction });
        var empty = Enumerable.Range(0, data.Count).Count(i => data.Caption(i, epoch: 2).Length == 0);
        Assert.InRange((double)empty / data.Count, fraction - 0.006, fraction + 0.006);
    }

    [Fact]
    public void RecipeJsonHoldsTheDefaultsAndBadValuesAreNamed()
    {
        var recipe = FashionColoursOptions.Load(Path.Combine(SharedData.RepositoryRoot, "configs", "eval", "fashion-colours.json"));
        Assert.Equal(FashionColoursOptions.Default.Seed, recipe.Seed);
        Assert.Equal(FashionColoursOptions.Default.EmptyCaptionFraction, recipe.EmptyCaptionFraction);
        Assert.Equal(FashionColoursOptions.DefaultHeldOut, recipe.HeldOut);
        // Six held-out pairs over six different colours and six different classes.
        var pairs = recipe.Validate();
        Assert.Equal(6, pairs.Select(p => p.Class).Distinct().Count());
        Assert.Equal(6, pairs.Select(p => p.Colour).Distinct().Count());

        var unknownField = Assert.Throws<ConfigException>(() => ConfigJson.Parse<FashionColoursOptions>("{\"sed\": 1}", "x.json"));
        Assert.Contains("sed", unknownField.Message);
        var badColour = Assert.Throws<ConfigException>(() => (FashionColoursOptions.Default with { HeldOut = [new("dress", "magenta")] }).Validate("x.json"));
        Assert.Contains("magenta", badColour.Message);
        var badClass = Assert.Throws<ConfigException>(() => (FashionColoursOptions.Default with { HeldOut = [new("hat", "red")] }).Validate("x.json"));
        Assert.Contains("hat", badClass.Message);
        var badFraction = Assert.Throws<ConfigException>(() => (FashionColoursOptions.Default with { EmptyCaptionFraction = 1.5 }).Validate("x.json"));
        Assert.Contains("empty_caption_fraction", badFraction.Message);
    }
}
