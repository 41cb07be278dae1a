using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

// The same tree as this PyTorch model (expected names and shapes below are what PyTorch 1.13 prints):
//   class ResBlock(nn.Module): norm1 = GroupNorm(2, c); conv1 = Conv2d(c, c, 3, padding=1);
//       time_emb_proj = Linear(temb, c); dropout = Dropout(0.1); nonlinearity = SiLU();
//       conv2 = Conv2d(c, c, (1, 3), padding=(0, 1), bias=False);
//       register_buffer("scale", ones(1)); register_buffer("cache", zeros(2), persistent=False)
//   class Down(nn.Module): resnets = ModuleList([ResBlock(4, 8), ResBlock(4, 8)]);
//       downsamplers = ModuleList([Conv2d(4, 4, 3, stride=2, padding=1)])
//   class Tiny(nn.Module): conv_in = Conv2d(3, 4, 3, padding=1); pos = Parameter(zeros(1, 4));
//       time_embedding = Sequential(Linear(8, 8), SiLU(), Linear(8, 8)); down_blocks = ModuleList([Down(), Down()]);
//       up = ConvTranspose2d(4, 4, 2, stride=2); norm_out = LayerNorm(4); embed = Embedding(10, 8);
//       register_buffer("position_ids", arange(5).unsqueeze(0))
internal sealed class ResBlock : Module
{
    public readonly GroupNorm norm1;
    public readonly Conv2d conv1;
    public readonly Linear time_emb_proj;
    public readonly Dropout dropout;
    public readonly SiLU nonlinearity;
    public readonly Conv2d conv2;

    public ResBlock(int c, int temb)
    {
        norm1 = RegisterModule("norm1", new GroupNorm(2, c));
        conv1 = RegisterModule("conv1", new Conv2d(c, c, 3, padding: 1));
        time_emb_proj = RegisterModule("time_emb_proj", new Linear(temb, c));
        dropout = RegisterModule("dropout", new Dropout(0.1));
        nonlinearity = RegisterModule("nonlinearity", new SiLU());
        conv2 = RegisterModule("conv2", new Conv2d(c, c, (1, 3), (1, 1), (0, 1), (1, 1), bias: false));
        RegisterBuffer("scale", Tensors.Ones([1]));
        RegisterBuffer("cache", Tensors.Zeros([2]), persistent: false);
    }
}

internal sealed class Down : Module
{
    public readonly ModuleList<ResBlock> resnets;
    public readonly ModuleList<Conv2d> downsamplers;

    public Down()
    {
        resnets = RegisterModule("resnets", new ModuleList<ResBlock>([new ResBlock(4, 8), new ResBlock(4, 8)]));
        downsamplers = RegisterModule("downsamplers", new ModuleList<Conv2d>([new Conv2d(4, 4, 3, stride: 2, padding: 1)]));
    }
}

internal sealed class Tiny : Module
{
    public readonly Conv2d conv_in;
    public readonly Tensor pos;
    public readonly Sequential time_embedding;
    public readonly ModuleList<Down> down_blocks;
    public readonly ConvTranspose2d up;
    public readonly LayerNorm norm_out;
    public readonly Embedding embed;
    public readonly Tensor position_ids;

    public Tiny()
    {
        conv_in = RegisterModule("conv_in", new Conv2d(3, 4, 3, padding: 1));
        pos = RegisterParameter("pos", Tensors.Zeros([1, 4]));
        time_embedding = RegisterModule("time_embedding", new Sequential(new Linear(8, 8), new SiLU(), new Linear(8, 8)));
        down_blocks = RegisterModule("down_blocks", new ModuleList<Down>([new Down(), new Down()]));
        up = RegisterModule("up", new ConvTranspose2d(4, 4, 2, stride: 2));
        norm_out = RegisterModule("norm_out", new LayerNorm(4));
        embed = RegisterModule("embed", new Embedding(10, 8));
        using var ids = Tensors.Arange(5);
        position_ids = RegisterBuffer("position_ids", ids.Unsqueeze(0));
    }
}

public class ModuleTests
{
    private static readonly (string Name, long[] Shape)[] ExpectedParameters =
    [
        ("pos", [1, 4]),
        ("conv_in.weight", [4, 3, 3, 3]),
        ("conv_in.bias", [4]),
        ("time_embedding.0.weight", [8, 8]),
        ("time_embedding.0.bias", [8]),
        ("time_embedding.2.weight", [8, 8]),
        ("time_embedding.2.bias", [8]),
        ("down_blocks.0.resnets.0.norm1.weight", [4]),
        ("down_blocks.0.resnets.0.norm1.bias", [4]),
        ("down_blocks.0.resnets.0.conv1.weight", [4, 4, 3, 3]),
        ("down_blocks.0.resnets.0.conv1.bias", [4]),
        ("down_blocks.0.resnets.0.time_emb_proj.weight", [4, 8]),
        ("down_blocks.0.resnets.0.time_emb_proj.bias", [4]),
        ("down_blocks.0.resnets.0.conv2.weight", [4, 4, 1, 3]),
        ("down_blocks.0.resnets.1.norm1.weight", [4]),
        ("down_blocks.0.resnets.1.norm1.bias", [4]),
        ("down_blocks.0.resnets.1.conv1.weight", [4, 4, 3, 3]),
        ("down_blocks.0.resnets.1.conv1.bias", [4]),
        ("down_blocks.0.resnets.1.time_emb_proj.weight", [4, 8]),
        ("down_blocks.0.resnets.1.time_emb_proj.bias", [4]),
        ("down_blocks.0.resnets.1.conv2.weight", [4, 4, 1, 3]),
        ("down_blocks.0.downsamplers.0.weight", [4, 4, 3, 3]),
        ("down_blocks.0.downsamplers.0.bias", [4]),
        ("down_blocks.1.resnets.0.norm1.weight", [4]),
        ("down_blocks.1.resnets.0.norm1.bias", [4]),
        ("down_blocks.1.resnets.0.conv1.weight", [4, 4, 3, 3]),
        ("down_blocks.1.resnets.0.conv1.bias", [4]),
        ("down_blocks.1.resnets.0.time_emb_proj.weight", [4, 8]),
        ("down_blocks.1.resnets.0.time_emb_proj.bias", [4]),
        ("down_blocks.1.resnets.0.conv2.weight", [4, 4, 1, 3]),
        ("down_blocks.1.resnets.1.norm1.weight", [4]),
        ("down_blocks.1.resnets.1.norm1.bias", [4]),
        ("down_blocks.1.resnets.1.conv1.weight", [4, 4, 3, 3]),
        ("down_blocks.1.resnets.1.conv1.bias", [4]),
        ("down_blocks.1.resnets.1.time_emb_proj.weight", [4, 8]),
        ("down_blocks.1.resnets.1.time_emb_proj.bias", [4]),
        ("down_blocks.1.resnets.1.conv2.weight", [4, 4, 1, 3]),
        ("down_blocks.1.downsamplers.0.weight", [4, 4, 3, 3]),
        ("down_blocks.1.downsamplers.0.bias", [4]),
        ("up.weight", [4, 4, 2, 2]),
        ("up.bias", [4]),
        ("norm_out.weight", [4]),
        ("norm_out.bias", [4]),
        ("embed.weight", [10, 8]),
    ];

    private static readonly string[] ExpectedStateDictKeys =
    [
        "pos", "position_ids", "conv_in.weight", "conv_in.bias",
        "time_embedding.0.weight", "time_embedding.0.bias", "time_embedding.2.weight", "time_embedding.2.bias",
        "down_blocks.0.resnets.0.scale", "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.norm1.bias",
        "down_blocks.0.resnets.0.conv1.weight", "down_blocks.0.resnets.0.conv1.bias", "down_blocks.0.resnets.0.time_emb_proj.weight",
        "down_blocks.0.resnets.0.time_emb_proj.bias", "down_blocks.0.resnets.0.conv2.weight",
        "down_blocks.0.resnets.1.scale", "down_blocks.0.resnets.1.norm1.weight", "down_blocks.0.resnets.1.norm1.bias",
        "down_blocks.0.resnets.1.conv1.weight", "down_blocks.0.resnets.1.conv1.bias", "down_blocks.0.resnets.1.time_emb_proj.weight",
        "down_blocks.0.resnets.1.time_emb_proj.bias", "down_blocks.0.resnets.1.conv2.weight",
        "down_blocks.0.downsamplers.0.weight", "down_blocks.0.downsamplers.0.bias",
        "down_blocks.1.resnets.0.scale", "down_blocks.1.resnets.0.norm1.weight", "down_blocks.1.resnets.0.norm1.bias",
        "down_blocks.1.resnets.0.conv1.weight", "down_blocks.1.resnets.0.conv1.bias", "down_blocks.1.resnets.0.time_emb_proj.weight",
        "down_blocks.1.resnets.0.time_emb_proj.bias", "down_blocks.1.resnets.0.conv2.weight",
        "down_blocks.1.resnets.1.scale", "down_blocks.1.resnets.1.norm1.weight", "down_blocks.1.resnets.1.norm1.bias",
        "down_blocks.1.resnets.1.conv1.weight", "down_blocks.1.resnets.1.conv1.bias", "down_blocks.1.resnets.1.time_emb_proj.weight",
        "down_blocks.1.resnets.1.time_emb_proj.bias", "down_blocks.1.resnets.1.conv2.weight",
        "down_blocks.1.downsamplers.0.weight", "down_blocks.1.downsamplers.0.bias",
        "up.weight", "up.bias", "norm_out.weight", "norm_out.bias", "embed.weight",
    ];

    private static readonly string[] ExpectedBuffers =
    [
        "position_ids",
        "down_blocks.0.resnets.0.scale", "down_blocks.0.resnets.0.cache", "down_blocks.0.resnets.1.scale", "down_blocks.0.resnets.1.cache",
        "down_blocks.1.resnets.0.scale", "down_blocks.1.resnets.0.cache", "down_blocks.1.resnets.1.scale", "down_blocks.1.resnets.1.cache",
    ];

    private static readonly string[] ExpectedModules =
    [
        "", "conv_in", "time_embedding", "time_embedding.0", "time_embedding.1", "time_embedding.2", "down_blocks", "down_blocks.0",
        "down_blocks.0.resnets", "down_blocks.0.resnets.0", "down_blocks.0.resnets.0.norm1", "down_blocks.0.resnets.0.conv1",
        "down_blocks.0.resnets.0.time_emb_proj", "down_blocks.0.resnets.0.dropout", "down_blocks.0.resnets.0.nonlinearity",
        "down_blocks.0.resnets.0.conv2", "down_blocks.0.resnets.1", "down_blocks.0.resnets.1.norm1", "down_blocks.0.resnets.1.conv1",
        "down_blocks.0.resnets.1.time_emb_proj", "down_blocks.0.resnets.1.dropout", "down_blocks.0.resnets.1.nonlinearity",
        "down_blocks.0.resnets.1.conv2", "down_blocks.0.downsamplers", "down_blocks.0.downsamplers.0", "down_blocks.1",
        "down_blocks.1.resnets", "down_blocks.1.resnets.0", "down_blocks.1.resnets.0.norm1", "down_blocks.1.resnets.0.conv1",
        "down_blocks.1.resnets.0.time_emb_proj", "down_blocks.1.resnets.0.dropout", "down_blocks.1.resnets.0.nonlinearity",
        "down_blocks.1.resnets.0.conv2", "down_blocks.1.resnets.1", "down_blocks.1.resnets.1.norm1", "down_blocks.1.resnets.1.conv1",
        "down_blocks.1.resnets.1.time_emb_proj", "down_blocks.1.resnets.1.dropout", "down_blocks.1.resnets.1.nonlinearity",
        "down_blocks.1.resnets.1.conv2", "down_blocks.1.downsamplers", "down_blocks.1.downsamplers.0", "up", "norm_out", "embed",
    ];

    [Fact]
    public void NamesShapesAndOrderMatchPyTorch()
    {
        using var m = new Tiny();
        var parameters = m.NamedParameters().ToList();
        Assert.Equal(ExpectedParameters.Select(p => p.Name), parameters.Select(p => p.Name));
        for (int i = 0; i < parameters.Count; i++)
            Assert.Equal(ExpectedParameters[i].Shape, parameters[i].Parameter.Shape);
        Assert.Equal(ExpectedStateDictKeys, m.StateDict().Keys);
        Assert.Equal(ExpectedBuffers, m.NamedBuffers().Select(b => b.Name));
        Assert.Equal(ExpectedModules, m.NamedModules().Select(x => x.Name));
        Assert.Equal(["conv_in", "time_embedding", "down_blocks", "up", "norm_out", "embed"], m.NamedChildren().Select(c => c.Name));
        Assert.Equal(1672, m.ParameterCount);
        Assert.All(m.Parameters(), p => Assert.True(p.RequiresGrad));
        Assert.All(m.Buffers(), b => Assert.False(b.RequiresGrad));
        Assert.Same(m.down_blocks[1].resnets[0].conv1.Weight, m.StateDict()["down_blocks.1.resnets.0.conv1.weight"]);
    }

    [Fact]
    public void SharedModulesAndTensorsAreListedOnceButSavedUnderEveryName()
    {
        using var shared = new Linear(2, 2);
        var list = new ModuleList(shared, shared);
        Assert.Equal(["0.weight", "0.bias"], list.NamedParameters().Select(p => p.Name));
        Assert.Equal(["0.weight", "0.bias", "1.weight", "1.bias"], list.StateDict().Keys);
        Assert.Equal(6, list.ParameterCount);
        Assert.Equal(["", "0"], list.NamedModules().Select(x => x.Name));
    }

    [Fact]
    public void RegistrationRejectsDuplicateAndDottedNames()
    {
        using var list = new ModuleList();
        list.RegisterParameter("w", Tensors.Zeros([1]));
        Assert.Throws<ArgumentException>(() => list.RegisterBuffer("w", Tensors.Zeros([1])));
        Assert.Throws<ArgumentException>(() => list.RegisterModule("a.b", new SiLU()));
        Assert.Throws<ArgumentException>(() => list.RegisterParameter("", Tensors.Zeros([1])));
    }

    [Fact]
    public void RegisteredTensorsLeaveTheDisposeScopeAndBecomeLeafParameters()
    {
        var holder = new ModuleList();
        Linear layer;
        Tensor custom;
        using (var scope = DisposeScope.Enter())
        {
            var source = Tensors.Ones([2]).RequiresGrad_();
            var product = source * 2;
            var count = scope.Count;
            layer = holder.RegisterModule("layer", new Linear(3, 2));
            custom = holder.RegisterParameter("p", product); // not a leaf: registered detached, as nn.Parameter does
            Assert.Equal(count - 1, scope.Count);
            Assert.True(custom.IsLeaf);
            Assert.True(custom.RequiresGrad);
        }
        Assert.False(layer.Weight.IsDisposed);
        Assert.False(custom.IsDisposed);
        Assert.Equal([2f, 2f], custom.ToArray<float>());
        using (DisposeScope.Enter())
            Assert.Equal([1L, 2], layer.Forward(Tensors.Ones([1, 3]) * custom.Sum()).Shape);
        holder.Dispose();
        Assert.True(layer.Weight.IsDisposed);
        Assert.True(custom.IsDisposed);
    }

    [Fact]
    public void TrainAndEvalPropagateAndSwitchDropout()
    {
        using var m = new Tiny();
        Assert.All(m.NamedModules(), x => Assert.True(x.Module.IsTraining));
        Assert.Same(m, m.Eval());
        Assert.All(m.NamedModules(), x => Assert.False(x.Module.IsTraining));

        var dropout = m.down_blocks[0].resnets[1].dropout;
        using var ones = Tensors.Ones([1000]);
        using (var y = dropout.Forward(ones)) Assert.True(y.Equal(ones));

        m.Train();
        Assert.True(dropout.IsTraining);
        using var big = new Dropout(0.5).Forward(ones);
        var values = big.ToArray<float>();
        Assert.All(values, v => Assert.True(v == 0 || v == 2));
        Assert.InRange(values.Count(v => v == 0), 350, 650);
    }

    [Fact]
    public void ToFloat64ConvertsFloatingTensorsInPlaceAndKeepsIntegerBuffers()
    {
        using var m = new Tiny();
        var weight = m.conv_in.Weight;
        var before = weight.ToArray<float>();
        var optimizerView = m.Parameters().ToList();

        Assert.Same(m, m.To(DType.Float64));

        Assert.Same(weight, m.conv_in.Weight);
        Assert.Equal(DType.Float64, weight.DType);
        Assert.True(weight.RequiresGrad);
        Assert.True(weight.IsLeaf);
        Assert.Equal(before.Select(v => (double)v), weight.ToArray<double>());
        Assert.All(m.Parameters(), p => Assert.Equal(DType.Float64, p.DType));
        Assert.Equal(DType.Int64, m.position_ids.DType);
        Assert.Equal(DType.Float64, m.StateDict()["down_blocks.0.resnets.0.scale"].DType);
        Assert.Equal(optimizerView, m.Parameters());

        using var x = Tensors.Ones([1, 3, 4, 4], DType.Float64);
        using var y = m.conv_in.Forward(x);
        using var loss = y.Sum();
        loss.Backward();
        using var grad = weight.Grad;
        Assert.Equal(DType.Float64, grad!.DType);
        Assert.Throws<ArgumentException>(() => m.To(DType.Int32));
    }

    [Fact]
    public void ZeroGradDropsEveryGradient()
    {
        using var layer = new Linear(3, 2);
        using (var scope = DisposeScope.Enter())
            layer.Forward(Tensors.Ones([4, 3])).Sum().Backward();
        Assert.All(layer.Parameters(), p => Assert.True(HasGrad(p)));
        layer.ZeroGrad();
        Assert.All(layer.Parameters(), p => Assert.False(HasGrad(p)));
    }

    internal static bool HasGrad(Tensor p)
    {
        using var g = p.Grad;
        return g is not null;
    }
}
