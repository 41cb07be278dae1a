using System.CommandLine;
using System.Runtime.InteropServices;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm info [--json]</c>: the libtorch runtime this process uses.</summary>
internal static class InfoCommand
{
    public const string ReferenceBlasWarning =
        "the reference BLAS is in use: matmul ~30x slower; apt install libopenblas0-pthread";

    public static Command Create(CliContext context)
    {
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a table" };
        var image = new Option<string?>("--image") { Description = "Print the generation parameters stored in a PNG instead" }.IsPath();
        var command = new Command("info", "Show libtorch, devices, threads, BLAS and the .NET runtime (or a PNG's generation parameters)") { json, image };
        command.SetAction(parsed =>
        {
            if (parsed.GetValue(image) is { } png) return PrintImageParameters(context, png, parsed.GetValue(json));
            var info = RuntimeInfo.Collect();
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(info));
            else Print(context, info);
            return 0;
        });
        return command;
    }

    /// <summary>The AUTOMATIC1111 "parameters" text of a PNG, as stored or (with --json) parsed.</summary>
    private static int PrintImageParameters(CliContext context, string path, bool json)
    {
        var text = Pipeline.Imaging.PngReader.ReadText(path).Find(Pipeline.Imaging.PngText.ParametersKeyword)
            ?? throw new InvalidDataException($"{path}: has no generation parameters (no 'parameters' text chunk)");
        if (!json)
        {
            context.Out.WriteLine(text);
            return 0;
        }
        var p = Pipeline.Imaging.GenerationParameters.Parse(text);
        context.Out.WriteLine(Json.Serialize(new ImageParameters(p.Prompt, p.NegativePrompt, p.Steps, p.Sampler, p.CfgScale, p.Seed, p.Width, p.Height, p.Model, p.Strength, p.ClipSkip)));
        return 0;
    }

    private sealed record ImageParameters(string Prompt, string NegativePrompt, int Steps, string Sampler, double CfgScale, long Seed, int Width, int Height, string? Model, double? Strength, int? ClipSkip);

    private static void Print(CliContext context, RuntimeInfo info)
    {
        var table = new Table().Border(TableBorder.Rounded).HideHeaders()
            .AddColumn("property").AddColumn("value");
        void Row(string name, string value) => table.AddRow(new Text(name), new Text(value));

        Row("ldm", info.Version);
        Row("libtorch", info.Libtorch);
        Row("ABI (native / managed)", $"{info.NativeAbiVersion} / {info.ManagedAbiVersion}");
        Row("devices", $"{string.Join(", ", info.Devices)} (cuda devices: {info.CudaDeviceCount})");
        Row("threads", info.Threads.ToString());
        Row("BLAS", info.Blas);
        Row("OMP_WAIT_POLICY", info.OmpWaitPolicy);
        Row("fused attention (libtorch SDPA)", info.FusedAttention ? "yes" : "no (libtorch < 2.1: math path)");
        Row("CPU attention kernel", info.FusedCpuAttention ? "fused (AVX-512, native/src/attention.cpp)"
            : "libtorch's products in blocks (no AVX-512, or LDTORCH_FUSED_ATTENTION=0)");
        Row("linear layers (inference)", info.OnednnMatmul ? "oneDNN's matmul on packed weights, f32 and bf16 (native/src/onednn.cpp)"
            : "libtorch's oneDNN and BLAS paths (built without libdnnl-dev, or LDTORCH_ONEDNN=0)");
        Row("batch streams (U-Net inference)", info.BatchStreams);
        Row("data-parallel backends", info.DistributedBackends.Count > 0 ? string.Join(", ", info.DistributedBackends) : "none (built without Gloo's headers: install libgloo-dev)");
        Row(".NET", info.Dotnet);
        Row("OS", $"{info.Os} ({info.Arch})");
        context.Console.Write(table);

        foreach (var warning in info.Warnings) context.Warn(warning);
    }
}

/// <summary>What <c>ldm info --json</c> prints (snake_case keys).</summary>
public sealed record RuntimeInfo(
    string Version,
    string Libtorch,
    int NativeAbiVersion,
    int ManagedAbiVersion,
    IReadOnlyList<string> Devices,
    int CudaDeviceCount,
    int Threads,
    string Blas,
    bool ReferenceBlas,
    string OmpWaitPolicy,
    bool FusedAttention,
    bool FusedCpuAttention,
    bool OnednnMatmul,
    string BatchStreams,
    IReadOnlyList<string> DistributedBackends,
    string Dotnet,
    string Os,
    string Arch,
    IReadOnlyList<string> Warnings)
{
    public static RuntimeInfo Collect()
    {
        var cudaCount = TorchRuntime.CudaIsAvailable ? TorchRuntime.CudaDeviceCount : 0;
        var devices = new List<string> { "cpu" };
        for (var i = 0; i < cudaCount; i++) devices.Add($"cuda:{i}");
        var warnings = new List<string>();
        if (TorchRuntime.IsReferenceBlas) warnings.Add(Commands.InfoCommand.ReferenceBlasWarning);

        return new RuntimeInfo(
            Version: CliApp.Version,
            Libtorch: TorchRuntime.LibTorchVersion,
            NativeAbiVersion: TorchRuntime.NativeAbiVersion,
            ManagedAbiVersion: TorchRuntime.ManagedAbiVersion,
            Devices: devices,
            CudaDeviceCount: cudaCount,
            Threads: TorchRuntime.Threads,
            Blas: TorchRuntime.Blas,
            ReferenceBlas: TorchRuntime.IsReferenceBlas,
            OmpWaitPolicy: TorchRuntime.OmpWaitPolicy,
            FusedAttention: TorchRuntime.HasFusedAttention,
            FusedCpuAttention: TorchRuntime.FusedCpuAttentionActive,
            OnednnMatmul: TorchRuntime.DirectOneDnnActive,
            BatchStreams: DescribeStreams(TorchRuntime.Threads),
            DistributedBackends: [.. ProcessGroup.HasGloo ? ["gloo"] : Array.Empty<string>(), .. ProcessGroup.HasNccl ? ["nccl"] : Array.Empty<string>()],
            Dotnet: RuntimeInformation.FrameworkDescription,
            Os: RuntimeInformation.OSDescription,
            Arch: RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
            Warnings: warnings);
    }

    private static string ThreadCount(int n) => n == 1 ? "1 thread" : $"{n} threads";

    /// <summary>How a CPU inference batch of the U-Nets runs (<see cref="LatentDiffusion.Torch.BatchStreams"/>).</summary>
    private static string DescribeStreams(int threads) => LatentDiffusion.Torch.BatchStreams.Count switch
    {
        null => $"auto: bf16/f16 as 2 streams of {ThreadCount(threads / 2)} where 2 divides the batch and the threads, f32 as one pass",
        1 => "off (LDTORCH_BATCH_STREAMS): one pass",
        { } n => $"{n} streams of {ThreadCount(threads / n)} where {n} divides the batch and the threads",
    };
}
