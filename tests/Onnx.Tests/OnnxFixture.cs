using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>The golden ONNX export of the tiny model (../shared/golden/v2/sd_tiny_onnx, copied to tests/fixtures/onnx).</summary>
internal static class OnnxFixture
{
    public static string Folder => SharedData.Fixture("onnx/sd_tiny_onnx");

    public static string Graph(string component) => Path.Combine(Folder, component, OnnxStableDiffusion.ModelFile);

    /// <summary>One thread, as the golden's own ONNX Runtime run.</summary>
    public static OnnxEngineOptions Engine { get; } = new() { Threads = 1 };

    public static StableDiffusionPipeline Load() => OnnxStableDiffusion.FromPretrained(Folder, Engine);

    /// <summary>A writable copy of the folder, for tests that break it.</summary>
    public static string Copy()
    {
        var target = Directory.CreateTempSubdirectory("ld-onnx-").FullName;
        foreach (var dir in Directory.GetDirectories(Folder, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(Folder, target));
        foreach (var file in Directory.GetFiles(Folder, "*", SearchOption.AllDirectories))
            File.Copy(file, file.Replace(Folder, target));
        return target;
    }
}
