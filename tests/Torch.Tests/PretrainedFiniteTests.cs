using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Weights holding NaN or ±Inf are refused at load, naming the file and the tensor.</summary>
public sealed class PretrainedFiniteTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-finite-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static readonly PretrainedFormat<Linear, int> Format = new()
    {
        ReadConfig = path => int.Parse(File.ReadAllText(path), System.Globalization.CultureInfo.InvariantCulture),
        Create = features => new Linear(features, features),
        WriteConfig = (path, model) => File.WriteAllText(path, "3"),
    };

    private string SaveModelWith(float poison, DType dtype)
    {
        using var model = new Linear(3, 3);
        Format.Save(model, directory);
        var weights = Path.Combine(directory, Pretrained.WeightsFile(Pretrained.DiffusersWeights));
        using var scope = DisposeScope.Enter();
        var values = new float[9];
        values[4] = poison;
        SafeTensorsFile.Save(weights, [new("bias", Tensors.Zeros([3]).To(dtype)), new("weight", Tensor.From(values, [3, 3]).To(dtype))]);
        return weights;
    }

    [Theory]
    [InlineData(float.NaN, DType.Float32)]
    [InlineData(float.PositiveInfinity, DType.Float16)]
    [InlineData(float.NegativeInfinity, DType.BFloat16)]
    public void AModelFolderWhoseWeightsHoldANonFiniteValueIsRefusedNamingTheTensor(float poison, DType dtype)
    {
        var weights = SaveModelWith(poison, dtype);
        var e = Assert.Throws<InvalidDataException>(() => Format.Load(directory).Dispose());
        Assert.Equal($"{weights}: tensor 'weight' has 1 non-finite value (NaN or ±Inf)", e.Message);
    }

    [Fact]
    public void FiniteWeightsLoad()
    {
        SaveModelWith(1e4f, DType.Float16);
        using var model = Format.Load(directory);
        using var max = model.Weight.Max();
        Assert.Equal(1e4, max.Item(), 1);
    }
}
