using System.Text.Json.Serialization;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// kohya-ss's aspect-ratio bucketing settings (sd-scripts' <c>enable_bucket</c> options): buckets of at most
/// <see cref="Resolution"/>² pixels whose sides are multiples of <see cref="Steps"/> between <see cref="MinSize"/> and
/// <see cref="MaxSize"/>; with <see cref="NoUpscale"/> each image makes its own bucket from its size instead (never enlarged).
/// </summary>
/// <remarks>A checkpoint records them under kohya's names, so that a resumed run can be held to the same buckets.</remarks>
public sealed record BucketOptions(
    [property: JsonPropertyName("resolution")] int Resolution,
    [property: JsonPropertyName("min_bucket_reso")] int MinSize = 256,
    [property: JsonPropertyName("max_bucket_reso")] int MaxSize = 1024,
    [property: JsonPropertyName("bucket_reso_steps")] int Steps = 64,
    [property: JsonPropertyName("bucket_no_upscale")] bool NoUpscale = false)
{
    /// <summary>Each setting under kohya's name, with its value as the recipe writes it.</summary>
    [JsonIgnore]
    public IReadOnlyList<(string Name, string Value)> Settings =>
    [
        ("resolution", $"{Resolution}"), ("min_bucket_reso", $"{MinSize}"), ("max_bucket_reso", $"{MaxSize}"),
        ("bucket_reso_steps", $"{Steps}"), ("bucket_no_upscale", NoUpscale ? "true" : "false"),
    ];

    /// <summary>One line naming the first unusable setting (kohya's names after <paramref name="prefix"/>), or null.</summary>
    public string? Problem(string prefix = "")
    {
        if (Steps < 8 || Steps % 8 != 0) return $"'{prefix}bucket_reso_steps' must be a positive multiple of 8 (the VAE's factor; got {Steps})";
        if (MinSize < Steps || MinSize % Steps != 0) return $"'{prefix}min_bucket_reso' must be a positive multiple of bucket_reso_steps {Steps} (got {MinSize})";
        if (MaxSize % Steps != 0) return $"'{prefix}max_bucket_reso' must be a multiple of bucket_reso_steps {Steps} (got {MaxSize})";
        // kohya asserts min(resolution) >= min_bucket_reso and max(resolution) <= max_bucket_reso
        if (Resolution < MinSize) return $"'{prefix}min_bucket_reso' {MinSize} must not exceed the resolution {Resolution}";
        if (Resolution > MaxSize) return $"'{prefix}max_bucket_reso' {MaxSize} must not be below the resolution {Resolution}";
        return null;
    }
}

/// <summary>A bucket's size in pixels (kohya's reso, width first).</summary>
public readonly record struct BucketSize(int Width, int Height)
{
    public override string ToString() => $"{Width}x{Height}";
}

/// <summary>
/// Where an image goes (kohya's select_bucket): its <see cref="Bucket"/>, and the size it is resized to before the centre
/// crop to the bucket (<see cref="ResizedWidth"/> × <see cref="ResizedHeight"/>, covering the bucket).
/// </summary>
public readonly record struct BucketAssignment(BucketSize Bucket, int ResizedWidth, int ResizedHeight)
{
    /// <summary>The centre crop's top-left corner in the resized image (kohya's trim: (resized − bucket) // 2).</summary>
    public (int Left, int Top) CropOrigin => ((ResizedWidth - Bucket.Width) / 2, (ResizedHeight - Bucket.Height) / 2);
}

/// <summary>
/// kohya-ss sd-scripts' BucketManager (library/train_util.py, with model_util.make_bucket_resolutions), in the same arithmetic:
/// the predefined buckets, and each image's bucket of the nearest aspect ratio (or, with no_upscale, a bucket cut from its own size).
/// </summary>
public sealed class AspectBuckets
{
    private readonly BucketOptions options;
    private readonly BucketSize[] predefined;
    private readonly double[] predefinedAspects;

    public AspectBuckets(BucketOptions options)
    {
        if (options.Problem() is { } problem) throw new ArgumentException(problem, nameof(options));
        this.options = options;
        predefined = options.NoUpscale ? [] : [.. Resolutions(options.Resolution, options.Resolution, options.MinSize, options.MaxSize, options.Steps)];
        predefinedAspects = [.. predefined.Select(b => (double)b.Width / b.Height)];
    }

    /// <summary>The predefined buckets (none with no_upscale), sorted by width, then height.</summary>
    public IReadOnlyList<BucketSize> Predefined => predefined;

    /// <summary>
    /// make_bucket_resolutions: the square of side ⌊√area / step⌋·step, and for every width from min to max in steps the
    /// largest height (a multiple of the step, at most max) with width × height ≤ area, both ways round, kept where ≥ min.
    /// </summary>
    public static IReadOnlyList<BucketSize> Resolutions(int maxWidth, int maxHeight, int minSize, int maxSize, int step)
    {
        long maxArea = (long)maxWidth * maxHeight;
        var resos = new HashSet<BucketSize>();
        int side = (int)Math.Floor(Math.Sqrt(maxArea) / step) * step;
        resos.Add(new(side, side));
        for (int width = minSize; width <= maxSize; width += step)
        {
            int height = (int)Math.Min(maxSize, maxArea / width / step * step);
            if (height < minSize) continue;
            resos.Add(new(width, height));
            resos.Add(new(height, width));
        }
        return [.. resos.OrderBy(r => r.Width).ThenBy(r => r.Height)];
    }

    /// <summary>select_bucket for an image of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    public BucketAssignment Select(int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"{width}x{height}: an image has a positive size");
        double aspect = (double)width / height;
        if (!options.NoUpscale)
        {
            // an image whose size is a bucket keeps it; otherwise the first bucket of the smallest aspect-ratio error
            var bucket = new BucketSize(width, height);
            if (Array.IndexOf(predefined, bucket) < 0)
            {
                int best = 0;
                for (int i = 1; i < predefined.Length; i++)
                    if (Math.Abs(predefinedAspects[i] - aspect) < Math.Abs(predefinedAspects[best] - aspect)) best = i;
                bucket = predefined[best];
            }
            // scale so that the image covers the bucket: wider than it → match the heights, else the widths
            double scale = aspect > (double)bucket.Width / bucket.Height ? (double)bucket.Height / height : (double)bucket.Width / width;
            return new BucketAssignment(bucket, (int)(width * scale + 0.5), (int)(height * scale + 0.5));
        }

        int resizedWidth = width, resizedHeight = height;
        long maxArea = (long)options.Resolution * options.Resolution;
        if ((long)width * height > maxArea)
        {
            // shrink to the area, keeping the aspect ratio, with one side rounded to the step: the rounding of less aspect error
            double w = Math.Sqrt(maxArea * aspect), h = maxArea / w;
            int widthRounded = RoundToSteps(w), heightInWidthRounded = RoundToSteps(widthRounded / aspect);
            int heightRounded = RoundToSteps(h), widthInHeightRounded = RoundToSteps(heightRounded * aspect);
            double widthError = heightInWidthRounded == 0 ? double.PositiveInfinity : Math.Abs((double)widthRounded / heightInWidthRounded - aspect);
            double heightError = heightRounded == 0 ? double.PositiveInfinity : Math.Abs((double)widthInHeightRounded / heightRounded - aspect);
            (resizedWidth, resizedHeight) = widthError < heightError
                ? (widthRounded, (int)(widthRounded / aspect + 0.5))
                : ((int)(heightRounded * aspect + 0.5), heightRounded);
        }
        // the bucket is the resized size cut down to the step (cropped, never padded)
        var own = new BucketSize(resizedWidth - resizedWidth % options.Steps, resizedHeight - resizedHeight % options.Steps);
        if (own.Width == 0 || own.Height == 0)
            throw new DatasetException($"{width}x{height}: with bucket_no_upscale a side below bucket_reso_steps {options.Steps} leaves no bucket (the bucket would be {own})");
        return new BucketAssignment(own, resizedWidth, resizedHeight);
    }

    private int RoundToSteps(double x)
    {
        int rounded = (int)(x + 0.5);
        return rounded - rounded % options.Steps;
    }
}
