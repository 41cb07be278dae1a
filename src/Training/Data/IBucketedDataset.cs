namespace LatentDiffusion.Training.Data;

/// <summary>
/// A dataset whose items come in several sizes (aspect-ratio bucketing): a batch stacks items of one bucket only, so the
/// trainer draws each batch from one bucket (<see cref="SampleOrder.Bucketed"/>).
/// </summary>
public interface IBucketedDataset : IDataset
{
    /// <summary>The dataset indices of each bucket (every item in exactly one); null when all items have one size.</summary>
    IReadOnlyList<int[]>? Buckets { get; }

    /// <summary>The bucketing settings (kohya's enable_bucket options) the buckets were made with; null without bucketing.</summary>
    BucketOptions? Bucketing { get; }
}
