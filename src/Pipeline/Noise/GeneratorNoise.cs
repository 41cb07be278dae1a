using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Noise;

/// <summary>
/// Noise drawn with <c>Tensors.Randn</c> from a libtorch <see cref="Generator"/>, the way diffusers'
/// <c>randn_tensor</c> draws it: on the generator's device in the requested dtype, then moved to the
/// target device. With a CPU generator seeded s, the draws equal
/// <c>torch.randn(shape, generator=torch.Generator().manual_seed(s))</c> in the same order.
/// </summary>
public sealed class GeneratorNoise : INoiseSource, IDisposable
{
    private readonly Generator? generator;
    private readonly bool ownsGenerator;

    /// <summary>Draws from <paramref name="generator"/>, which the caller keeps owning.</summary>
    public GeneratorNoise(Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        this.generator = generator;
    }

    /// <summary>Draws from a new CPU generator seeded with <paramref name="seed"/> (owned and disposed by this source).</summary>
    public GeneratorNoise(ulong seed)
    {
        generator = new Generator(seed);
        ownsGenerator = true;
    }

    private GeneratorNoise() { }

    /// <summary>Draws from libtorch's global default generator (diffusers' behaviour when no generator is passed).</summary>
    public static GeneratorNoise Global { get; } = new();

    /// <summary>Number of tensors drawn so far.</summary>
    public int Drawn { get; private set; }

    public Tensor Next(long[] shape, DType dtype, Device device)
    {
        var drawDevice = generator?.Device ?? device;
        Tensor result;
        // libtorch has no CPU normal_ kernel for half types in every version: draw float32 and round,
        // which is what a half-precision draw computes internally anyway.
        if (drawDevice.Type == DeviceType.Cpu && dtype is DType.Float16 or DType.BFloat16)
        {
            using var scope = DisposeScope.Enter();
            var full = Tensors.Randn(shape, generator, DType.Float32, drawDevice);
            result = scope.Keep(full.To(device, dtype));
        }
        else
        {
            result = Tensors.Randn(shape, generator, dtype, drawDevice);
            if (drawDevice != device)
            {
                using var scope = DisposeScope.Enter();
                var moved = result.To(device);
                result.Dispose();
                result = scope.Keep(moved);
            }
        }
        Drawn++;
        return result;
    }

    public void Dispose()
    {
        if (ownsGenerator) generator!.Dispose();
    }
}
