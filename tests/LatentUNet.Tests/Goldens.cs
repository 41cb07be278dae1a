using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>Golden tensors produced by diffusers 0.30.3 (copied from ../shared/golden into tests/fixtures/latentunet).</summary>
public sealed class Golden : IDisposable
{
    private readonly Dictionary<string, Tensor> tensors;

    public Golden(string relative) => tensors = SafeTensorsFile.LoadFile(SharedData.Fixture("latentunet/" + relative));

    public Tensor this[string name] => tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"golden has no tensor '{name}'");

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}
