using System.Text.Json.Serialization;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// What `ldm eval ddpm --json` prints: the classifier-feature FID between the samples and the
/// Fashion-MNIST test split, how many samples the classifier put in each class, and the sample count.
/// </summary>
public sealed record DdpmEvaluationResult(
    [property: JsonPropertyName("fid")] double Fid,
    [property: JsonPropertyName("class_histogram")] IReadOnlyDictionary<string, int> ClassHistogram,
    [property: JsonPropertyName("samples")] int Samples);

/// <summary>Samples judged so far (reported after each batch).</summary>
public sealed record EvaluationProgress(int Done, int Total);

/// <summary>
/// Judges an unconditional Fashion-MNIST generator (the pixel DDPM) with the shipped Fashion-MNIST
/// classifier. The sampler is a delegate so that this layer need not know the pipeline.
/// </summary>
public static class DdpmEvaluation
{
    /// <summary>
    /// Draws <paramref name="samples"/> images by calling <paramref name="sampleBatch"/>(n) for
    /// batches of at most <paramref name="batchSize"/>; each call returns n images [n, 1, 32, 32] in
    /// [-1, 1] (an owned tensor, disposed here). Classifies them, fits a Gaussian to their penultimate
    /// features and returns its FID against the test split's statistics shipped with the classifier.
    /// </summary>
    public static DdpmEvaluationResult Evaluate(Func<int, Tensor> sampleBatch, int samples, Judge? judge = null, int batchSize = 100,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sampleBatch);
        if (samples < 2) throw new ArgumentOutOfRangeException(nameof(samples), samples, "FID needs at least 2 samples");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        var owned = judge is null;
        judge ??= Judge.LoadFashionClassifier();
        try
        {
            if (judge.Model.Config.InChannels != 1)
                throw new ArgumentException($"{judge.Directory} judges {judge.Model.Config.InChannels}-channel images; the DDPM evaluation needs the grey Fashion-MNIST classifier");
            var histogram = new int[judge.Model.Config.NumClasses];
            var features = new FeatureAccumulator();
            var done = 0;
            while (done < samples)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var want = Math.Min(batchSize, samples - done);
                using var scope = DisposeScope.Enter();
                var batch = sampleBatch(want) ?? throw new InvalidOperationException("the sampler returned no tensor");
                var n = (int)Math.Min(want, batch.Size(0));
                if (n < 1) throw new InvalidOperationException("the sampler returned an empty batch");
                var judged = judge.Classify(batch.Narrow(0, 0, n));
                batch.Dispose();
                foreach (var c in judged.Classes) histogram[c]++;
                features.Add(judged.Features, judged.FeatureDim);
                done += n;
                progress?.Report(new EvaluationProgress(done, samples));
            }
            var fid = Fid.Compute(features.ToStatistics(), judge.Reference);
            var names = FashionMnist.ClassNames;
            var byName = new Dictionary<string, int>();
            for (int c = 0; c < histogram.Length; c++) byName[c < names.Count ? names[c] : c.ToString(System.Globalization.CultureInfo.InvariantCulture)] = histogram[c];
            return new DdpmEvaluationResult(fid, byName, done);
        }
        finally
        {
            if (owned) judge.Dispose();
        }
    }
}
