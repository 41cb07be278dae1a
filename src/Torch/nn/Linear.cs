using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.NN;

/// <summary>
/// torch.nn.Linear: y = x Wᵀ + b with weight [out, in] and bias [out].
/// <para>
/// Inference (issue 19): the weight is prepacked once into oneDNN's layout (native/src/onednn.cpp, or linear.cpp
/// without it), with <see cref="Conv2d"/>'s contract: made at the first forward without autograd, a frozen weight then
/// kept only as the packed copy and given back, bit for bit, to whatever reads it (<see cref="Weight"/>, state dicts,
/// conversions). Where oneDNN is called directly (<see cref="PacksEveryProduct"/>) f32 and bf16 products run on the
/// packed weight at every row count; else f32 products with few rows for their weight do, and a forward with many rows
/// gives the plain weight back and drops the packed copy (one copy either way).
/// <see cref="ModuleExtensions.PrepackForInference{T}"/> leaves linear layers to their first forward.
/// </para>
/// </summary>
public sealed class Linear : Module<Tensor, Tensor>
{
    public long InFeatures { get; }
    public long OutFeatures { get; }
    private readonly Tensor weight;

    /// <summary>The weight [out, in]; reading it gives back the plain copy if inference released it.</summary>
    public Tensor Weight
    {
        get
        {
            prepacked.Restore(weight);
            return weight;
        }
    }

    public Tensor? Bias { get; }

    public Linear(long inFeatures, long outFeatures, bool bias = true, Generator? generator = null)
    {
        if (inFeatures < 0 || outFeatures < 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), "feature counts must not be negative");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        var w = Tensors.Empty([outFeatures, inFeatures]);
        var b = bias ? Tensors.Empty([outFeatures]) : null;
        Init.DefaultLinearOrConv(w, b, generator);
        weight = RegisterParameter("weight", w);
        Bias = RegisterParameter("bias", b);
        prepacked = new PrepackedWeight(PrepackAvailable, Packs, Prepack, Unpack);
    }

    /// <summary>
    /// A term added to the output, y = x Wᵀ + b + Adapter(x), for an adapter that trains beside a frozen layer
    /// (a LoRA's scale · up(down(x)), as PEFT's LoraLayer adds it); null: none.
    /// </summary>
    public Func<Tensor, Tensor>? Adapter { get; set; }

    public override Tensor Forward(Tensor input)
    {
        if (Adapter is not { } adapter) return Project(input, null).Output;
        using var scope = DisposeScope.Enter();
        return scope.Keep(Project(input, null).Output + adapter(input));
    }

    /// <summary>
    /// Forward(input) + <paramref name="residual"/> (a transformer's skip connection): where the weight is packed for
    /// oneDNN's matmul and the residual has the output's shape, the sum is added inside the product (a binary post-op)
    /// instead of in a pass of its own, and the output is rounded once (bf16: apart from the separate sum by at most its
    /// two roundings, the product's and the sum's; f32: the same values). Otherwise, and with an <see cref="Adapter"/>,
    /// the separate sum, in diffusers' order ((x Wᵀ + b + adapter) + residual).
    /// </summary>
    public Tensor Forward(Tensor input, Tensor residual)
    {
        ArgumentNullException.ThrowIfNull(residual);
        using var scope = DisposeScope.Enter();
        var (rs, xs) = (residual.Shape, input.Shape);
        var fused = Adapter is null && residual.DType == input.DType && residual.Device.Type == DeviceType.Cpu
            && rs.Length == xs.Length && xs.Length >= 1 && rs[^1] == OutFeatures && rs.AsSpan(0, rs.Length - 1).SequenceEqual(xs.AsSpan(0, xs.Length - 1));
        var y = Project(input, fused ? residual : null);
        if (y.Added) return scope.Keep(y.Output);
        var output = Adapter is { } adapter ? y.Output + adapter(input) : y.Output;
        return scope.Keep(output + residual);
    }

    private static readonly bool PrepackAvailable = NativeMethods.HasMkldnn() == 1
        && Environment.GetEnvironmentVariable("LDTORCH_LINEAR_PREPACK") != "0";

    /// <summary>
    /// Whether the packed weight serves every f32 and bf16 product on the calling thread (oneDNN's matmul called directly,
    /// native/src/onednn.cpp: 470–560 GFLOP/s f32, 950–1,100 bf16 from 128 rows on, bench/onednn_shapes.cpp, measured
    /// 2026-12-05 in bench/README.md) rather than only the f32 products with few rows (<see cref="PackedIsFaster"/>):
    /// <see cref="TorchRuntime.DirectOneDnnActive"/>.
    /// </summary>
    internal static bool PacksEveryProduct => PrepackAvailable && TorchRuntime.DirectOneDnnActive;

    private static bool Packs(DType dtype) => dtype == DType.Float32 || PacksEveryProduct && dtype == DType.BFloat16;

    private readonly PrepackedWeight prepacked;

    /// <summary>
    /// Whether an f32 product of <paramref name="rows"/> rows runs faster on the prepacked weight than on the plain one
    /// (oneDNN reordering the dense weight in each call from 128 rows, OpenBLAS below): while the weight's reorder,
    /// ∝ in · out, outweighs the two transposed copies of the activations, ∝ rows · (in + out), that the packed path
    /// needs (native/src/linear.cpp): 4 · rows · (in + out) &lt; in · out. Measured on the 2-core AVX-512 machine,
    /// PyTorch 1.13 on the same libtorch, 2 threads, `chrt -f 1`, 2026-12-05, GFLOP/s of at::linear (OpenBLAS) / the
    /// dense oneDNN 1×1 convolution / the packed weight, rows × in → out: 2 × 1280→1280 21 / 21 / 93;
    /// 32 × 1280→1280 14–190 / 190 / 392; 32 × 640→5120 26 / 26 / 380; 128 × 1280→1280 47–50 / 286–387 / 318–457;
    /// 128 × 1280→10240 111–144 / 125–129 / 335–424; 128 × 640→640 85–116 / 336 / 191–362 (dense: rule 4·128·1280 &gt;
    /// 640²); 154 × 768→320 7 / 367 / 297 (dense); 154 × 5120→1280 121 / 326 / 388 (packed); 2048 × 320→2560
    /// 143–171 / 252–511 / 151–355 (dense). bf16 is never packed: at::linear runs it on oneDNN's matmul at 700–1000
    /// GFLOP/s from 32 rows, ahead of the packed weight everywhere but at 2 rows (bench/README.md, issue 19). Used only
    /// without <see cref="PacksEveryProduct"/>.
    /// </summary>
    internal static bool PackedIsFaster(long rows, long inFeatures, long outFeatures) =>
        4 * rows * (inFeatures + outFeatures) < inFeatures * outFeatures;

    // x Wᵀ + b, and the residual added inside the product where it was given and the packed path took it.
    private (Tensor Output, bool Added) Project(Tensor input, Tensor? residual)
    {
        // Metadata only: the weight's values are read by the packing or by the plain path's Weight getter.
        if (PrepackAvailable && !Autograd.IsGradEnabled && Packs(input.DType) && weight.DType == input.DType
            && input.Device.Type == DeviceType.Cpu && input.Dim >= 1 && InFeatures > 0)
        {
            var rows = input.NumEl / InFeatures;
            if (rows > 0 && (PacksEveryProduct || PackedIsFaster(rows, InFeatures, OutFeatures)))
            {
                if (prepacked.Get(weight, Bias, applies: true) is { } packed)
                {
                    var b = Bias?.Handle ?? IntPtr.Zero;
                    return residual is null
                        ? (new Tensor(NativeMethods.LinearPrepacked(input.Handle, packed.Handle, b), "linear_prepacked"), false)
                        : (new Tensor(NativeMethods.LinearPrepackedAdd(input.Handle, packed.Handle, b, residual.Handle), "linear_prepacked_add"), true);
                }
            }
            else if (prepacked.Bytes > 0)
            {
                prepacked.Clear(weight); // many rows: the plain weight back, the packed copy dropped
            }
        }
        return (Functional.Linear(input, Weight, Bias), false);
    }

    private static Tensor Prepack(Tensor w) => new Tensor(NativeMethods.LinearPrepack(w.Handle), "linear_prepack").DetachFromDisposeScope();

    private static Tensor Unpack(Tensor packed, long[] shape) => new(NativeMethods.LinearUnpack(packed.Handle), "linear_unpack");

    internal override void OnTensorsReplaced() => prepacked.Clear(weight);

    internal override void RestoreReleasedTensors() => prepacked.Restore(weight);

    internal override long DerivedTensorBytes => prepacked.Bytes;

    protected override void Dispose(bool disposing)
    {
        if (disposing) prepacked.Drop(weight);
        base.Dispose(disposing);
    }
}

/// <summary>torch.nn.Embedding: rows of weight [num_embeddings, embedding_dim], initialised N(0, 1).</summary>
public sealed class Embedding : Module<Tensor, Tensor>
{
    public long NumEmbeddings { get; private set; }
    public long EmbeddingDim { get; }
    public Tensor Weight { get; }

    public Embedding(long numEmbeddings, long embeddingDim, Generator? generator = null)
    {
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        var w = Tensors.Empty([numEmbeddings, embeddingDim]);
        Init.Normal_(w, 0, 1, generator);
        Weight = RegisterParameter("weight", w);
    }

    /// <summary>Looks up integer <paramref name="input"/> indices (any shape) → [..., embedding_dim].</summary>
    public override Tensor Forward(Tensor input) => Functional.Embedding(input, Weight);

    /// <summary>
    /// Grows the table by <paramref name="rows"/> [k, embedding_dim] at the end (the step of transformers'
    /// resize_token_embeddings that new tokens need); <see cref="Weight"/> stays the same object.
    /// </summary>
    public void AppendRows(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Dim != 2 || rows.Size(1) != EmbeddingDim)
            throw new ArgumentException($"rows of [{string.Join(", ", rows.Shape)}] cannot extend an embedding of dimension {EmbeddingDim}", nameof(rows));
        var requiresGrad = Weight.RequiresGrad;
        using (Autograd.NoGrad())
        {
            using var added = rows.To(Weight.Device, Weight.DType);
            Weight.ReplaceWith(Tensor.Cat([Weight, added]).DetachFromDisposeScope());
        }
        if (requiresGrad) Weight.RequiresGrad = true;
        NumEmbeddings = Weight.Size(0);
        OnTensorsReplaced();
    }
}
