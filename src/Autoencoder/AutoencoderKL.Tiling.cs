using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Autoencoder;

// Tiled encoding and decoding, step for step as diffusers 0.30.3 (autoencoder_kl.py). Tiles overlap by
// TileOverlapFactor; each tile is blended in place with the tile above and the tile to its left
// (which were themselves blended before), then cropped to the non-overlapping part and concatenated.
// Each tile goes through the whole network on its own (GroupNorm statistics and the mid-block
// attention see only the tile), so the result is close to, not equal to, the untiled one.
public sealed partial class AutoencoderKL
{
    /// <summary>Encodes <paramref name="x"/> in overlapping tiles of <see cref="TileSampleMinSize"/> pixels.</summary>
    public DiagonalGaussianDistribution TiledEncode(Tensor x) => new(TiledEncodeMoments(x));

    private Tensor TiledEncodeMoments(Tensor x)
    {
        var overlapSize = (int)(TileSampleMinSize * (1 - TileOverlapFactor));
        var blendExtent = (int)(TileLatentMinSize * TileOverlapFactor);
        var rowLimit = TileLatentMinSize - blendExtent;
        CheckTiling(overlapSize);

        using var scope = DisposeScope.Enter();
        var rows = new List<List<Tensor>>();
        for (long i = 0; i < x.Size(2); i += overlapSize)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < x.Size(3); j += overlapSize)
            {
                var tile = Encoder.Forward(Crop(x, i, j, TileSampleMinSize));
                row.Add(QuantConv is null ? tile : tile.Then(QuantConv.Forward));
            }
            rows.Add(row);
        }
        return scope.Keep(BlendTiles(rows, blendExtent, rowLimit));
    }

    /// <summary>Decodes <paramref name="z"/> in overlapping tiles of <see cref="TileLatentMinSize"/> latents.</summary>
    public Tensor TiledDecode(Tensor z)
    {
        var overlapSize = (int)(TileLatentMinSize * (1 - TileOverlapFactor));
        var blendExtent = (int)(TileSampleMinSize * TileOverlapFactor);
        var rowLimit = TileSampleMinSize - blendExtent;
        CheckTiling(overlapSize);

        using var scope = DisposeScope.Enter();
        var rows = new List<List<Tensor>>();
        for (long i = 0; i < z.Size(2); i += overlapSize)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < z.Size(3); j += overlapSize)
            {
                var tile = Crop(z, i, j, TileLatentMinSize);
                if (PostQuantConv is not null) tile = tile.Then(PostQuantConv.Forward);
                row.Add(tile.Then(Decoder.Forward));
            }
            rows.Add(row);
        }
        return scope.Keep(BlendTiles(rows, blendExtent, rowLimit));
    }

    private void CheckTiling(int overlapSize)
    {
        if (overlapSize < 1 || TileOverlapFactor is < 0 or >= 1)
            throw new InvalidOperationException(
                $"tiling needs a tile of at least 2 latents and an overlap factor in [0, 1) (tile {TileSampleMinSize} px / {TileLatentMinSize} latents, overlap {TileOverlapFactor})");
    }

    // x[:, :, i : i + size, j : j + size] (the last tiles are smaller).
    private static Tensor Crop(Tensor x, long i, long j, long size)
    {
        using var rowsOfTile = x.Slice(2, i, i + size);
        return rowsOfTile.Slice(3, j, j + size);
    }

    private static Tensor BlendTiles(List<List<Tensor>> rows, int blendExtent, int rowLimit)
    {
        var resultRows = new List<Tensor>();
        for (int i = 0; i < rows.Count; i++)
        {
            var resultRow = new List<Tensor>();
            for (int j = 0; j < rows[i].Count; j++)
            {
                var tile = rows[i][j];
                if (i > 0) BlendV(rows[i - 1][j], tile, blendExtent);
                if (j > 0) BlendH(rows[i][j - 1], tile, blendExtent);
                using var top = tile.Slice(2, 0, rowLimit);
                resultRow.Add(top.Slice(3, 0, rowLimit));
            }
            resultRows.Add(Tensor.Cat(resultRow, dim: 3));
        }
        return Tensor.Cat(resultRows, dim: 2);
    }

    /// <summary>In place: b[:, :, y] = a[:, :, −e + y]·(1 − y/e) + b[:, :, y]·(y/e) for y &lt; e (diffusers' blend_v).</summary>
    public static void BlendV(Tensor a, Tensor b, int blendExtent) => Blend(a, b, blendExtent, dim: 2);

    /// <summary>In place: b[..., x] = a[..., −e + x]·(1 − x/e) + b[..., x]·(x/e) for x &lt; e (diffusers' blend_h).</summary>
    public static void BlendH(Tensor a, Tensor b, int blendExtent) => Blend(a, b, blendExtent, dim: 3);

    private static void Blend(Tensor a, Tensor b, int blendExtent, int dim)
    {
        var extent = (int)Math.Min(Math.Min(a.Size(dim), b.Size(dim)), blendExtent);
        if (extent <= 0) return;
        using var scope = DisposeScope.Enter();
        // The weights are computed in double and rounded to float, as Python scalars are when they
        // multiply a float32 tensor, so the vectorised blend equals diffusers' row-by-row loop.
        var towardsB = new float[extent];
        var towardsA = new float[extent];
        for (int k = 0; k < extent; k++)
        {
            towardsB[k] = (float)(k / (double)extent);
            towardsA[k] = (float)(1 - k / (double)extent);
        }
        long[] shape = dim == 2 ? [1, 1, extent, 1] : [1, 1, 1, extent];
        var wa = Tensor.From(towardsA, shape).To(a.Device, a.DType);
        var wb = Tensor.From(towardsB, shape).To(b.Device, b.DType);
        var aEdge = a.Slice(dim, a.Size(dim) - extent, a.Size(dim));
        var bEdge = b.Slice(dim, 0, extent);
        bEdge.CopyFrom(aEdge * wa + bEdge * wb);
    }
}
