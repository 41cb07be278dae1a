using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;
using LatentDiffusion.Training.Lora;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

/// <summary>
/// Teaching the embedded model a new colour word: the tint measure that judges colours the judge's head never learnt,
/// the Fashion colours data with a fraction of items recoloured, and the recipe that trains on it.
/// </summary>
public sealed class NewColourTests(FashionMnistSplits splits, ITestOutputHelper output) : IClassFixture<FashionMnistSplits>
{
    private static readonly FashionColour Magenta = FashionColours.NewColours.Single(c => c.Name == "magenta");

    private static Tensor Render(FashionMnist source, int first, int count, FashionColour colour)
    {
        const int size = FashionColours.Channels * FashionColours.Side * FashionColours.Side;
        var pixels = new float[count * size];
        for (int i = 0; i < count; i++) FashionColours.Render(source.Image(first + i), colour, pixels.AsSpan(i * size, size));
        return Tensor.From(pixels, count, FashionColours.Channels, FashionColours.Side, FashionColours.Side);
    }

    [Fact]
    public void TheTintMeasureNamesEveryPaletteColourOfRealTestItems()
    {
        using var scope = DisposeScope.Enter();
        var palette = TintJudge.FullPalette;
        Assert.Equal(9, palette.Count);
        for (int k = 0; k < palette.Count; k++)
        {
            var names = TintJudge.Name(Render(splits.Test, 0, 500, palette[k]), palette);
            var right = names.Count(n => n == k);
            output.WriteLine($"{palette[k].Name}: {right}/500");
            Assert.True(right >= 498, $"{palette[k].Name}: {right}/500 named right");
        }
        // an image of background only has no tint; purple is not magenta
        Assert.Equal([-1], TintJudge.Name(Tensors.Full([1, 3, 32, 32], FashionColours.Background.R / 127.5f - 1), palette));
        Assert.DoesNotContain(8, TintJudge.Name(Render(splits.Test, 0, 100, FashionColours.Colours[6]), palette));
    }

    [Fact]
    public void PromptsOfANewColourAreJudgedByTheirTintAndTheOthersByTheJudgesHead()
    {
        var prompts = PromptEvaluation.ColourPrompts("magenta");
        Assert.Equal(10, prompts.Count);
        Assert.Equal("a pair of magenta trousers", prompts[1].Prompt);
        Assert.All(prompts, p => Assert.Equal(8, p.Colour));
        Assert.Throws<ArgumentException>(() => PromptEvaluation.ColourPrompts("teal"));

        // real test items of the asked class: tinted magenta they follow the word, tinted purple they do not
        var byClass = Enumerable.Range(0, 10).Select(c => Enumerable.Range(0, splits.Test.Count).Where(i => splits.Test.Labels[i] == c).Take(4).ToArray()).ToArray();
        Tensor Real(string prompt, FashionColour colour, int n)
        {
            var cls = prompts.Single(p => p.Prompt == prompt).Class!.Value;
            var tensors = byClass[cls].Take(n).Select(i => Render(splits.Test, i, 1, colour)).ToArray();
            return Tensor.Cat(tensors);
        }
        using var judge = Judge.LoadFashionColoursJudge();
        var magenta = PromptEvaluation.Evaluate((p, n) => Real(p, Magenta, n), prompts, 4, judge);
        Assert.Equal(1.0, magenta.ColourAdherence);
        Assert.True(magenta.ClassAdherence >= 0.8, $"class adherence {magenta.ClassAdherence}");
        var purple = PromptEvaluation.Evaluate((p, n) => Real(p, FashionColours.Colours[6], n), prompts, 4, judge);
        Assert.Equal(0.0, purple.ColourAdherence);
        Assert.All(purple.Prompts, p => Assert.Equal(new Dictionary<string, int> { ["purple"] = 4 }, p.PredictedColours));
    }

    [Fact]
    public void TheDataRecoloursAFixedHalfOfTheItemsAndNamesTheNewColourInTheirCaptions()
    {
        var data = new FashionColours(splits.Train, train: true);
        var dataset = new FashionColoursDataset(data, limit: 2000, newColour: Magenta, newColourFraction: 0.5);
        var recoloured = Enumerable.Range(0, dataset.Count).Count(dataset.IsRecoloured);
        Assert.InRange(recoloured, 900, 1100);
        Assert.Equal(recoloured, Enumerable.Range(0, dataset.Count).Count(new FashionColoursDataset(data, limit: 2000, newColour: Magenta, newColourFraction: 0.5).IsRecoloured));

        int[] indices = [.. Enumerable.Range(0, 64)];
        using var scope = DisposeScope.Enter();
        using var batch = dataset.GetBatch(indices, augmentationSeed: 5);
        var tints = TintJudge.Name(batch.Data, TintJudge.FullPalette);
        for (int i = 0; i < indices.Length; i++)
        {
            var caption = batch.Captions![i];
            if (dataset.IsRecoloured(i))
            {
                Assert.Equal(8, tints[i]);
                Assert.DoesNotContain(FashionColours.Colours, c => caption.Split(' ').Contains(c.Name));
            }
            else
            {
                Assert.Equal(data.Colour(i), tints[i]);
                Assert.Equal(data.Caption(i, 5), caption);
            }
        }
        Assert.Contains(Enumerable.Range(0, indices.Length), i => batch.Captions![i].Contains("magenta", StringComparison.Ordinal));
        using var again = dataset.GetBatch(indices, augmentationSeed: 5);
        Assert.True(again.Data.Equal(batch.Data));
        Assert.Equal(batch.Captions, again.Captions);
    }

    [Fact]
    public void TheCommittedRecipeTrainsOnFashionColoursWithMagenta()
    {
        var recipe = LoraRecipe.Load(Path.Combine(SharedData.RepositoryRoot, "configs", "train", "lora-fashion-magenta.json")).Validate();
        var dataset = Assert.IsType<FashionColoursDataset>(recipe.OpenDataset());
        Assert.Equal(60_000, dataset.Count);
        Assert.Equal("magenta", dataset.NewColour!.Name);

        static string Bad(string data) => Assert.Throws<Recipes.RecipeException>(() => LoraRecipe.Parse($$"""{ "model": "m", "data": {{data}} }""", "r.json").Validate()).Message;
        Assert.Equal("r.json: 'data.new_colour' \"teal\" is not one of magenta", Bad("""{ "fashion_colours": {}, "new_colour": "teal", "resolution": 32 }"""));
        Assert.Equal("r.json: 'data' gives both 'folder' and 'fashion_colours'; choose one", Bad("""{ "fashion_colours": {}, "folder": "x", "resolution": 32 }"""));
        Assert.Equal("r.json: 'data.new_colour_fraction' must be in [0, 1] (got 2)", Bad("""{ "fashion_colours": {}, "new_colour": "magenta", "new_colour_fraction": 2, "resolution": 32 }"""));
        Assert.Equal("r.json: 'data.resolution' must be 32 for Fashion colours (got 64)", Bad("""{ "fashion_colours": {}, "resolution": 64 }"""));
        Assert.Equal("r.json: 'data.new_colour' needs 'data.fashion_colours'", Bad("""{ "folder": "x", "new_colour": "magenta" }"""));
    }
}
