using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Autoencoder.Tests;

/// <summary>Tiled and sliced encoding/decoding of the tiny SD VAE (tile 64 px = 8 latents).</summary>
public class AutoencoderKLTilingTests(ITestOutputHelper output)
{
    private static Tensor RandomLatents(long batch, long size, ulong seed)
    {
        using var g = new Generator(seed);
        return Tensors.Randn([batch, 4, size, size], g);
    }

    /// <summary>A smooth latent (one slow cosine per channel around a per-channel level), like a VAE latent of a smooth image.</summary>
    private static Tensor SmoothLatents(long size)
    {
        var values = new float[4 * size * size];
        for (int c = 0; c < 4; c++)
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    values[(c * size + y) * size + x] = (float)(0.5 * c - 0.7 + 0.3 * Math.Cos(2 * Math.PI * (x + 2 * y + 3 * c) / (4.0 * size)));
        return Tensor.From(values, 1, 4, size, size);
    }

    [Fact]
    public void TiledDecodeEqualsTheRowByRowBlendOfDiffusers()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var noGrad = Autograd.NoGrad();
        using var z = RandomLatents(1, 20, 1);
        vae.UseTiling = true;
        using var tiled = vae.Decode(z);
        using var reference = ReferenceTiledDecode(vae, z);
        Assert.Equal([1, 3, 160, 160], tiled.Shape);
        Assert.True(tiled.Equal(reference), $"tiled decode differs from the reference loop by {TensorAssert.MaxAbsDifference(tiled, reference):G3}");
    }

    [Fact]
    public void AwayFromSeamsTheTiledDecodeIsEachTilesOwnDecode()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var noGrad = Autograd.NoGrad();
        using var z = RandomLatents(1, 16, 2);
        vae.UseTiling = true;
        using var tiled = vae.Decode(z);
        vae.UseTiling = false;
        // Tiles of 8 latents start every 6; each keeps 48 px, of which the first 16 rows/columns are
        // blended with the tile above/left. Tile (0, 0) is kept whole, tile (1, 1) from px 16 on.
        using var tile00 = vae.Decode(z.Slice(2, 0, 8).Slice(3, 0, 8));
        using var tile11 = vae.Decode(z.Slice(2, 6, 14).Slice(3, 6, 14));
        using var out00 = tiled.Slice(2, 0, 48).Slice(3, 0, 48);
        using var own00 = tile00.Slice(2, 0, 48).Slice(3, 0, 48);
        using var out11 = tiled.Slice(2, 64, 96).Slice(3, 64, 96);
        using var own11 = tile11.Slice(2, 16, 48).Slice(3, 16, 48);
        Assert.True(out00.Equal(own00));
        Assert.True(out11.Equal(own11));
    }

    [Fact]
    public void TiledDecodeApproximatesUntiled()
    {
        // Each tile runs the whole decoder on its own: GroupNorm statistics and the mid-block attention
        // see only the tile, and zero padding acts at every tile border. A trained VAE gives visually
        // seamless results; this random-weight tiny VAE does not, so this test only reports the gap,
        // with tiles large against the receptive field (32 latents = 256 px over a 48-latent image).
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        vae.TileSampleMinSize = 256;
        vae.TileLatentMinSize = 32;
        using var noGrad = Autograd.NoGrad();
        using var z = SmoothLatents(48);
        using var whole = vae.Decode(z);
        vae.UseTiling = true;
        using var tiled = vae.Decode(z);
        Assert.Equal(whole.Shape, tiled.Shape);
        using var difference = (whole - tiled).Abs();
        using var spread = whole.Std();
        using var meanDifference = difference.Mean();
        output.WriteLine($"tiled vs untiled: mean |Δ| {meanDifference.Item():G3}, max |Δ| {difference.Max().Item():G3}; untiled output std {spread.Item():G3}");
        Assert.True(meanDifference.Item() < spread.Item(), "the tiled decode is unrelated to the untiled one");
    }

    [Fact]
    public void TiledEncodeHasTheLatentShape()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var noGrad = Autograd.NoGrad();
        using var g = new Generator(3);
        using var image = Tensors.Rand([1, 3, 128, 128], g) * 2 - 1;
        using var whole = vae.Encode(image);
        vae.UseTiling = true;
        using var tiled = vae.Encode(image);
        Assert.Equal(whole.Mean.Shape, tiled.Mean.Shape);
        var difference = TensorAssert.MaxAbsDifference(whole.Mean, tiled.Mean);
        output.WriteLine($"tiled vs untiled encode: max |Δμ| {difference:G3}");
    }

    [Fact]
    public void SlicedDecodeAndEncodeEqualTheBatchedResults()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var noGrad = Autograd.NoGrad();
        using var z = RandomLatents(3, 8, 4);
        using var batched = vae.Decode(z);
        using var batchedPosterior = vae.Encode(batched);
        vae.UseSlicing = true;
        using var sliced = vae.Decode(z);
        using var slicedPosterior = vae.Encode(batched);
        var decode = TensorAssert.MaxAbsDifference(batched, sliced);
        var encode = TensorAssert.MaxAbsDifference(batchedPosterior.Mean, slicedPosterior.Mean);
        output.WriteLine($"sliced vs batched: decode {decode:G3}, encode {encode:G3}");
        // Each image is computed on its own either way; only the convolution kernels' blocking may differ.
        Assert.True(decode < 5e-5, $"decode differs by {decode}");
        Assert.True(encode < 5e-5, $"encode differs by {encode}");
    }

    /// <summary>diffusers' tiled_decode written out with its per-row blend loops, for comparison.</summary>
    private static Tensor ReferenceTiledDecode(AutoencoderKL vae, Tensor z)
    {
        using var scope = DisposeScope.Enter();
        var latentTile = vae.TileLatentMinSize;
        var sampleTile = vae.TileSampleMinSize;
        var overlap = (int)(latentTile * (1 - vae.TileOverlapFactor));
        var blendExtent = (int)(sampleTile * vae.TileOverlapFactor);
        var rowLimit = sampleTile - blendExtent;
        vae.UseTiling = false;
        try
        {
            var rows = new List<List<Tensor>>();
            for (long i = 0; i < z.Size(2); i += overlap)
            {
                var row = new List<Tensor>();
                for (long j = 0; j < z.Size(3); j += overlap)
                    row.Add(vae.Decode(z.Slice(2, i, i + latentTile).Slice(3, j, j + latentTile)));
                rows.Add(row);
            }
            var resultRows = new List<Tensor>();
            for (int i = 0; i < rows.Count; i++)
            {
                var resultRow = new List<Tensor>();
                for (int j = 0; j < rows[i].Count; j++)
                {
                    var tile = rows[i][j];
                    if (i > 0) LoopBlend(rows[i - 1][j], tile, blendExtent, 2);
                    if (j > 0) LoopBlend(rows[i][j - 1], tile, blendExtent, 3);
                    resultRow.Add(tile.Slice(2, 0, rowLimit).Slice(3, 0, rowLimit));
                }
                resultRows.Add(Tensor.Cat(resultRow, 3));
            }
            return scope.Keep(Tensor.Cat(resultRows, 2));
        }
        finally
        {
            vae.UseTiling = true;
        }
    }

    private static void LoopBlend(Tensor a, Tensor b, int blendExtent, int dim)
    {
        var extent = (int)Math.Min(Math.Min(a.Size(dim), b.Size(dim)), blendExtent);
        for (int y = 0; y < extent; y++)
        {
            using var scope = DisposeScope.Enter();
            var target = b.Select(dim, y);
            target.CopyFrom(a.Select(dim, a.Size(dim) - extent + y) * (1 - y / (double)extent) + target * (y / (double)extent));
        }
    }
}
