using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Blocks.Tests;

/// <summary>get_down_block / get_up_block: the one factory of the U-Nets' and the VAE's stages.</summary>
public class UNetBlocksTests
{
    internal static readonly ResnetSettings Resnet = new(TembChannels: 16, Groups: 8);
    internal static readonly CrossAttentionSettings CrossAttention = new(NumAttentionHeads: 2, CrossAttentionDim: 24);

    [Theory]
    [InlineData("DownBlock2D", typeof(DownBlock2D))]
    [InlineData("UNetResDownBlock2D", typeof(DownBlock2D))]
    [InlineData("CrossAttnDownBlock2D", typeof(CrossAttnDownBlock2D))]
    [InlineData("AttnDownBlock2D", typeof(AttnDownBlock2D))]
    [InlineData("DownEncoderBlock2D", typeof(DownEncoderBlock2D))]
    public void DownBlockTypesBuildTheirBlocks(string type, Type expected)
    {
        using var block = UNetBlocks.GetDownBlock(type, "down_block_types[0]", 1, 16, 32, Resnet, addDownsample: true, crossAttention: CrossAttention);
        Assert.IsType(expected, block);
    }

    [Theory]
    [InlineData("UpBlock2D", typeof(UpBlock2D))]
    [InlineData("CrossAttnUpBlock2D", typeof(CrossAttnUpBlock2D))]
    [InlineData("AttnUpBlock2D", typeof(AttnUpBlock2D))]
    [InlineData("UpDecoderBlock2D", typeof(UpDecoderBlock2D))]
    public void UpBlockTypesBuildTheirBlocks(string type, Type expected)
    {
        using var block = UNetBlocks.GetUpBlock(type, "up_block_types[0]", 2, 16, 32, 32, Resnet, addUpsample: true, crossAttention: CrossAttention);
        Assert.IsType(expected, block);
    }

    [Fact]
    public void AnUnknownBlockTypeIsAnErrorNamingTheField()
    {
        var down = Assert.Throws<ConfigException>(() => UNetBlocks.GetDownBlock("SimpleCrossAttnDownBlock2D", "down_block_types[2]", 1, 16, 32, Resnet, true));
        Assert.Contains("'down_block_types[2]'", down.Message);
        Assert.Contains("SimpleCrossAttnDownBlock2D", down.Message);
        var up = Assert.Throws<ConfigException>(() => UNetBlocks.GetUpBlock("AttnUpDecoderBlock2D", "up_block_types[1]", 2, 16, 32, 32, Resnet, true));
        Assert.Contains("'up_block_types[1]'", up.Message);
        var check = Assert.Throws<ConfigException>(() => UNetBlocks.Check(["DownBlock2D", "DownEncoderBlock2D"], "down_block_types", "DownBlock2D"));
        Assert.Contains("'down_block_types[1]'", check.Message);
    }

    [Fact]
    public void ACrossAttentionBlockWithoutCrossAttentionSettingsIsAnErrorNamingTheField()
    {
        var e = Assert.Throws<ConfigException>(() => UNetBlocks.GetDownBlock("CrossAttnDownBlock2D", "down_block_types[0]", 1, 16, 32, Resnet, true));
        Assert.Contains("'down_block_types[0]'", e.Message);
    }

    /// <summary>The VAE's blocks: no timestep embedding, diffusers' key names, no downsampler on the last stage.</summary>
    [Fact]
    public void EncoderAndDecoderBlocksCarryDiffusersNames()
    {
        var vae = new ResnetSettings(null, ActFn: "silu", Groups: 8);
        using var down = (DownEncoderBlock2D)UNetBlocks.GetDownBlock("DownEncoderBlock2D", "f", 2, 8, 16, vae, addDownsample: true, downsamplePadding: 0);
        using var up = (UpDecoderBlock2D)UNetBlocks.GetUpBlock("UpDecoderBlock2D", "f", 3, 16, 8, null, vae, addUpsample: false);
        var keys = down.StateDict().Keys.ToList();
        Assert.Contains("resnets.0.conv_shortcut.weight", keys);
        Assert.Contains("downsamplers.0.conv.weight", keys);
        Assert.DoesNotContain(keys, k => k.Contains("time_emb_proj") || k.Contains("nonlinearity"));
        Assert.DoesNotContain(up.StateDict().Keys, k => k.StartsWith("upsamplers"));

        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([1, 8, 6, 6], new Generator(1));
        Assert.Equal([1L, 16, 3, 3], down.Forward(x).Shape);
        Assert.Equal([1L, 8, 6, 6], up.Forward(Tensors.Randn([1, 16, 6, 6], new Generator(2))).Shape);
    }

    /// <summary>The VAE's mid block: attentions before resnets in the state dict, the attention's deprecated-block names.</summary>
    [Fact]
    public void TheVaeMidBlockHasDiffusersKeysInDiffusersOrder()
    {
        using var mid = new UNetMidBlock2D(16, new ResnetSettings(null, Groups: 8), attentionHeadDim: 16);
        var keys = mid.StateDict().Keys.ToList();
        Assert.Equal("attentions.0.group_norm.weight", keys[0]);
        Assert.Contains("attentions.0.to_out.0.bias", keys);
        Assert.True(keys.IndexOf("resnets.0.norm1.weight") > keys.IndexOf("attentions.0.to_out.0.bias"));
    }

    [Fact]
    public void ClassicAndFusedAttentionProcessorsAgree()
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        using var attention = new Attention(16, heads: 2, dimHead: 8, bias: true, normNumGroups: 4, residualConnection: true,
            fromDeprecatedAttnBlock: true, generator: new Generator(3));
        var x = Tensors.Randn([2, 16, 3, 5], new Generator(4));
        var fused = attention.Forward(x);
        attention.SetAttentionProcessor(AttentionProcessor.Classic);
        var classic = attention.Forward(x);
        Assert.True(TensorAssert.MaxAbsDifference(fused, classic) < 1e-5);
    }

    [Theory]
    [InlineData("silu", typeof(SiLU))]
    [InlineData("Swish", typeof(SiLU))]
    [InlineData("MISH", typeof(Mish))]
    [InlineData("gelu", typeof(GELU))]
    [InlineData("relu", typeof(ReLU))]
    public void ActivationsAreDiffusersNamesInAnyCase(string name, Type expected)
    {
        using var activation = Activations.Create(name);
        Assert.IsType(expected, activation);
        Assert.True(Activations.IsSupported(name));
    }

    [Fact]
    public void AnUnknownActivationIsAnErrorNamingTheField()
    {
        var e = Assert.Throws<ConfigException>(() => Activations.Create("tanh", "time_embedding_act_fn"));
        Assert.Contains("'time_embedding_act_fn'", e.Message);
        Assert.False(Activations.IsSupported("quick_gelu"));
    }
}

/// <summary>Seeds the global generator, so it runs alone.</summary>
[Collection(LiveTensorCount.Name)]
public class BlockSeedingTests
{
    /// <summary>A block seeded through its generator draws the same weights as one built after seeding the global generator.</summary>
    [Fact]
    public void AGeneratorSeedsABlockAsTheGlobalSeedDoes()
    {
        using var generator = new Generator(21);
        var (resnet, crossAttention) = (UNetBlocksTests.Resnet, UNetBlocksTests.CrossAttention);
        using var seeded = new CrossAttnDownBlock2D(1, 16, 32, resnet, crossAttention, generator: generator);
        TorchRuntime.ManualSeed(21);
        using var global = new CrossAttnDownBlock2D(1, 16, 32, resnet, crossAttention);
        foreach (var (key, value) in seeded.StateDict())
            Assert.True(value.Equal(global.StateDict()[key]), key);
    }
}
