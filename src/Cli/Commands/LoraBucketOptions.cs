using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Training.Lora;

namespace LatentDiffusion.Cli.Commands;

/// <summary>
/// <c>ldm train lora</c>'s aspect-ratio bucketing options, kohya-ss sd-scripts' names (also with its underscores:
/// <c>--enable_bucket</c>); each given one overrides the recipe's <c>data</c> field of the same name.
/// </summary>
internal static class LoraBucketOptions
{
    private static readonly Option<bool> EnableBucket = new("--enable-bucket", "--enable_bucket")
        { Description = "Aspect-ratio buckets instead of the square crop (data.enable_bucket)" };
    private static readonly Option<int?> MinBucketReso = new Option<int?>("--min-bucket-reso", "--min_bucket_reso")
        { Description = "Shortest bucket side in pixels (data.min_bucket_reso; kohya's default 256)" }.AtLeast(8);
    private static readonly Option<int?> MaxBucketReso = new Option<int?>("--max-bucket-reso", "--max_bucket_reso")
        { Description = "Longest bucket side in pixels (data.max_bucket_reso; kohya's default 1024)" }.AtLeast(8);
    private static readonly Option<int?> BucketResoSteps = new Option<int?>("--bucket-reso-steps", "--bucket_reso_steps")
        { Description = "Bucket sides are multiples of it (data.bucket_reso_steps; kohya's default 64)" }.AtLeast(8);
    private static readonly Option<bool> BucketNoUpscale = new("--bucket-no-upscale", "--bucket_no_upscale")
        { Description = "Buckets cut from each image's own size, never enlarged (data.bucket_no_upscale)" };

    public static RecipeOverrides Overrides { get; } = new([EnableBucket, MinBucketReso, MaxBucketReso, BucketResoSteps, BucketNoUpscale], Forward);

    /// <summary>The recipe with the given options in its data section.</summary>
    public static LoraRecipe Apply(LoraRecipe recipe, ParseResult parsed) => recipe with
    {
        Data = recipe.Data with
        {
            EnableBucket = parsed.GetValue(EnableBucket) || recipe.Data.EnableBucket,
            MinBucketReso = parsed.GetValue(MinBucketReso) ?? recipe.Data.MinBucketReso,
            MaxBucketReso = parsed.GetValue(MaxBucketReso) ?? recipe.Data.MaxBucketReso,
            BucketResoSteps = parsed.GetValue(BucketResoSteps) ?? recipe.Data.BucketResoSteps,
            BucketNoUpscale = parsed.GetValue(BucketNoUpscale) || recipe.Data.BucketNoUpscale,
        },
    };

    /// <summary>The given options again, for the data-parallel ranks' command lines.</summary>
    private static string[] Forward(ParseResult parsed)
    {
        var args = new List<string>();
        if (parsed.GetValue(EnableBucket)) args.Add(EnableBucket.Name);
        if (parsed.GetValue(BucketNoUpscale)) args.Add(BucketNoUpscale.Name);
        foreach (var option in new[] { MinBucketReso, MaxBucketReso, BucketResoSteps })
            if (parsed.GetValue(option) is { } value) args.AddRange([option.Name, value.ToString(CultureInfo.InvariantCulture)]);
        return [.. args];
    }
}

/// <summary>Options of one <c>ldm train</c> recipe command that override its recipe, and how to pass them on to the ranks.</summary>
internal sealed record RecipeOverrides(Option[] Options, Func<ParseResult, string[]> Forward);
