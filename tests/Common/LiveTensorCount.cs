using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// Tests that count live native tensors run alone, because the count is process-wide:
/// <c>[Collection(LiveTensorCount.Name)]</c>.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LiveTensorCount
{
    public const string Name = "live tensor count";

    /// <summary>The live count after finalising tensors other tests dropped without disposing, so they do not vanish mid-measurement.</summary>
    public static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }
}
