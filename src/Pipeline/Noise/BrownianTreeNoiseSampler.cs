using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Noise;

/// <summary>
/// Noise for one step of an SDE sampler from σ to σ_next: a standard normal tensor, e.g. the normalised increment
/// of a Brownian motion over [σ_next, σ]. The caller owns the result.
/// </summary>
public interface ISigmaNoiseSampler
{
    Tensor Next(double sigma, double sigmaNext);
}

/// <summary>
/// k-diffusion's BrownianTreeNoiseSampler (as diffusers copies it for DPMSolverSDEScheduler): a Brownian motion W on
/// [σ_min, σ_max], one per image, each fixed by its seed, and a step from σ to σ_next gets
/// (W(σ_next) − W(σ)) / √|σ_next − σ|. Steps over overlapping intervals (the two halves of a DPM++ SDE step) get
/// correlated noise, as the paths they sample are one path.
/// <para>
/// torchsde's BrownianTree, which k-diffusion uses, is replaced by <see cref="BrownianTree"/>, a deterministic
/// Brownian-bridge bisection on our own generator: the same seed gives the same path run to run, and its increments
/// have the law of Brownian increments, but the numbers are not torchsde's (diffusers' results cannot be reproduced
/// bit for bit without torchsde).
/// </para>
/// </summary>
public sealed class BrownianTreeNoiseSampler : ISigmaNoiseSampler
{
    private readonly BrownianTree[] trees;
    private readonly long[] shape;
    private readonly DType dtype;
    private readonly Device device;

    /// <summary>
    /// One tree per seed: with one seed per image, row i of every draw comes from tree i (k-diffusion's batched tree);
    /// with a single seed, one tree of the whole shape (diffusers' noise_sampler_seed).
    /// </summary>
    public BrownianTreeNoiseSampler(long[] shape, double sigmaMin, double sigmaMax, IReadOnlyList<ulong> seeds, DType dtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count == 0) throw new ArgumentException("at least one seed is needed", nameof(seeds));
        bool batched = seeds.Count > 1;
        if (batched && (shape.Length == 0 || shape[0] != seeds.Count))
            throw new ArgumentException($"{seeds.Count} seeds for a batch of shape [{string.Join(", ", shape)}]", nameof(seeds));
        var treeShape = (long[])shape.Clone();
        if (batched) treeShape[0] = 1;
        trees = seeds.Select(s => new BrownianTree(treeShape, Math.Min(sigmaMin, sigmaMax), Math.Max(sigmaMin, sigmaMax), s)).ToArray();
        this.shape = shape;
        this.dtype = dtype;
        this.device = device;
    }

    public Tensor Next(double sigma, double sigmaNext)
    {
        using var scope = DisposeScope.Enter();
        // BatchedBrownianTree sorts the pair and signs the increment: W(σ_next) − W(σ) either way
        var parts = trees.Select(tree => tree.Increment(sigma, sigmaNext)).ToList();
        var w = parts.Count == 1 ? parts[0] : Tensor.Cat(parts);
        var z = w / Math.Sqrt(Math.Abs(sigmaNext - sigma));
        return scope.Keep(z.To(device, dtype));
    }

    /// <summary>The shape of every draw.</summary>
    public IReadOnlyList<long> Shape => shape;
}

/// <summary>
/// A Brownian motion W on [t0, t1] with W(t0) = 0, sampled lazily and deterministically from a seed: W(t1) is drawn
/// from the root's seed, and W at the midpoint of a node [a, b] from the Brownian bridge
/// N((W(a) + W(b))/2, (b − a)/4) with the node's seed; each child's seed is a hash of its parent's. W(t) descends
/// the bisection until the node is shorter than <see cref="Tolerance"/> and interpolates linearly inside it.
/// Values at dyadic points are exact Brownian values; elsewhere the variance is off by at most the tolerance.
/// Every value depends only on the seed and t, never on which values were asked for before.
/// </summary>
public sealed class BrownianTree
{
    private const int CacheSize = 4;
    private readonly long[] shape;
    private readonly ulong seed;
    private readonly List<(double T, double[] W)> cache = [];  // the last few values (a DPM++ SDE step asks for σ twice)

    public BrownianTree(long[] shape, double t0, double t1, ulong seed, double tolerance = 1e-6)
    {
        if (!(t1 > t0)) throw new ArgumentException($"a Brownian tree needs t0 < t1 (got {t0}, {t1})");
        this.shape = shape;
        this.seed = seed;
        T0 = t0;
        T1 = t1;
        Tolerance = tolerance;
    }

    public double T0 { get; }

    public double T1 { get; }

    /// <summary>The length below which the bisection stops (torchsde's default tol, 1e-6).</summary>
    public double Tolerance { get; }

    /// <summary>W(b) − W(a), float64, of the tree's shape; the ends are clamped into [t0, t1].</summary>
    public Tensor Increment(double a, double b)
    {
        var wa = Value(a);
        var wb = Value(b);
        var d = new double[wa.Length];
        for (int i = 0; i < d.Length; i++) d[i] = wb[i] - wa[i];
        return Tensor.From(d, shape);
    }

    /// <summary>W(t) as host values (t clamped into [t0, t1]).</summary>
    public double[] Value(double t)
    {
        t = Math.Clamp(t, T0, T1);
        foreach (var (ct, cw) in cache) if (ct == t) return cw;
        var w = Compute(t);
        if (cache.Count == CacheSize) cache.RemoveAt(0);
        cache.Add((t, w));
        return w;
    }

    private double[] Compute(double t)
    {
        long n = shape.Aggregate(1L, (p, s) => p * s);
        double a = T0, b = T1;
        var wa = new double[n];
        var wb = Normal(Mix(seed, 0x243F6A8885A308D3UL), n, Math.Sqrt(b - a));
        if (t == a) return wa;
        if (t == b) return wb;
        ulong node = seed;
        while (b - a > Tolerance)
        {
            double m = 0.5 * (a + b);
            // Brownian bridge at the midpoint: mean of the ends, variance (m − a)(b − m)/(b − a) = (b − a)/4
            var wm = Normal(Mix(node, 0x13198A2E03707344UL), n, Math.Sqrt(0.25 * (b - a)));
            for (long i = 0; i < n; i++) wm[i] += 0.5 * (wa[i] + wb[i]);
            if (t == m) return wm;
            if (t < m)
            {
                b = m;
                wb = wm;
                node = Mix(node, 0xA4093822299F31D0UL);
            }
            else
            {
                a = m;
                wa = wm;
                node = Mix(node, 0x082EFA98EC4E6C89UL);
            }
        }
        double r = (t - a) / (b - a);
        var w = new double[n];
        for (long i = 0; i < n; i++) w[i] = wa[i] + r * (wb[i] - wa[i]);
        return w;
    }

    /// <summary>n independent N(0, scale²) values from a libtorch CPU generator seeded <paramref name="nodeSeed"/>.</summary>
    private static double[] Normal(ulong nodeSeed, long n, double scale)
    {
        using var scope = DisposeScope.Enter();
        using var generator = new Generator(nodeSeed);
        var values = (Tensors.Randn([n], generator, DType.Float64) * scale).ToArray<double>();
        return values;
    }

    /// <summary>SplitMix64 of the parent seed and a branch constant: the seed of a child node.</summary>
    internal static ulong Mix(ulong parent, ulong branch)
    {
        ulong z = parent + branch + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
