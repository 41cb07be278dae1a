using System.CommandLine;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli;

/// <summary>
/// The one check of <c>--device</c> and <c>--dtype</c> for every command that takes them: at parse time (exit 2,
/// one line) rather than as a libtorch error halfway through loading a model.
/// </summary>
internal static class DeviceOptions
{
    /// <summary>
    /// The help of every <c>--dtype</c> that runs a pipeline, with what bf16 does to the images (README, "bf16 against f32
    /// in 8-bit images": <c>ldm bench quality</c> on the embedded model and the tiny goldens, 30 steps).
    /// </summary>
    public const string DTypeHelp = "Compute dtype: f32, bf16, f16 (needs --device cuda), or auto (bf16 on CPUs with AVX512-BF16/AMX, "
        + "f16 on CUDA, else f32). bf16 is ~1.9× faster on such CPUs but not the same image: against f32 it moved 8-bit pixel values "
        + "by up to 29 levels (mean 0.4–0.7, PSNR 46–49 dB) in `ldm bench quality`";

    /// <summary>Refuses a device that is not there and a dtype that cannot run on the chosen device.</summary>
    public static Command ChecksDevice(this Command command, Option<string> device, Option<string>? dtype = null)
    {
        command.Validators.Add(result =>
        {
            if (Check(device.Name, result.GetValue(device), dtype?.Name, dtype is null ? null : result.GetValue(dtype)) is { } error)
                result.AddError(error);
        });
        return command;
    }

    /// <summary>
    /// As <see cref="ChecksDevice(Command, Option{string}, Option{string}?)"/>, except that a command that will run on ONNX
    /// Runtime (<paramref name="onnx"/>) has its device checked against ONNX Runtime's execution providers, not libtorch's.
    /// </summary>
    public static Command ChecksDevice(this Command command, Option<string> device, Option<string> dtype, Func<System.CommandLine.Parsing.CommandResult, bool> onnx)
    {
        command.Validators.Add(result =>
        {
            string? error;
            try
            {
                error = onnx(result) ? CheckOnnx(device.Name, result.GetValue(device)) : Check(device.Name, result.GetValue(device), dtype.Name, result.GetValue(dtype));
            }
            catch (ArgumentException e)
            {
                error = e.Message;
            }
            if (error is not null) result.AddError(error);
        });
        return command;
    }

    private static string? CheckOnnx(string deviceName, string? deviceText)
    {
        deviceText ??= "cpu";
        Device device;
        try
        {
            device = Device.Parse(deviceText);
        }
        catch (ArgumentException e)
        {
            return $"{deviceName}: {e.Message}";
        }
        return device.Type == DeviceType.Cuda && Onnx.OnnxRuntimeSetup.CudaMissing(device.Index) is { } missing ? $"{deviceName} {deviceText}: {missing}" : null;
    }

    /// <summary>The error for <paramref name="deviceText"/> and <paramref name="dtypeText"/>, or null when they can run here.</summary>
    internal static string? Check(string deviceName, string? deviceText, string? dtypeName, string? dtypeText)
    {
        deviceText ??= "cpu"; // a command validator may see no value for an option left at its default
        Device device;
        try
        {
            device = Device.Parse(deviceText);
        }
        catch (ArgumentException e)
        {
            return $"{deviceName}: {e.Message}";
        }
        if (device.Type == DeviceType.Cuda)
        {
            // Only a CUDA device loads libtorch here; the CPU default costs nothing at parse time.
            if (!TorchRuntime.CudaIsAvailable)
                return $"{deviceName} {deviceText}: CUDA is not available (libtorch {TorchRuntime.LibTorchVersion} is a CPU build or sees no GPU; set LIBTORCH to a CUDA build)";
            if (device.Index >= TorchRuntime.CudaDeviceCount)
                return $"{deviceName} {deviceText}: no such CUDA device (libtorch sees {TorchRuntime.CudaDeviceCount})";
        }
        if (dtypeText is null || dtypeName is null) return null;
        DType? dtype;
        try
        {
            dtype = ParseDType(dtypeText, device);
        }
        catch (ArgumentException)
        {
            dtype = null;
        }
        if (dtype is not (DType.Float32 or DType.BFloat16 or DType.Float16))
            return $"{dtypeName} must be f32, bf16, f16 or auto, got '{dtypeText}'";
        // libtorch's CPU kernels have no float16 layer norm ("LayerNormKernelImpl not implemented for 'Half'"), and diffusers
        // refuses fp16 on the CPU too; bfloat16 has CPU kernels and stays allowed.
        if (dtype == DType.Float16 && device.Type == DeviceType.Cpu)
            return $"{dtypeName} f16 needs a GPU ({deviceName} cuda); on the CPU use f32 or bf16";
        return null;
    }

    /// <summary>
    /// A <c>--dtype</c> value: f32, bf16, f16, or <c>auto</c> (<see cref="AutoDType"/> for <paramref name="device"/>
    /// and this machine's CPU flags). Anything else throws <see cref="ArgumentException"/> naming it.
    /// </summary>
    internal static DType ParseDType(string text, Device device) =>
        text.Equals("auto", StringComparison.OrdinalIgnoreCase) ? AutoDType(device, CpuFlags.Value) : DTypeExtensions.Parse(text);

    /// <summary>
    /// <c>--dtype auto</c> (issue 19): on CUDA f16, what GPUs run fastest and diffusers' pipelines use there (a VAE that
    /// asks for force_upcast stays f32 either way); on a CPU bf16 only where the CPU computes it natively
    /// (<c>avx512_bf16</c> or <c>amx_bf16</c>: oneDNN's bf16 kernels, about 2.3× the f32 U-Net here), f32 elsewhere, where
    /// bf16 is emulated and can be slower than f32. f32 stays the default: bf16 changes the result slightly
    /// (bench/README.md reports the difference).
    /// </summary>
    internal static DType AutoDType(Device device, IReadOnlySet<string> cpuFlags) =>
        device.Type == DeviceType.Cuda ? DType.Float16
        : cpuFlags.Contains("avx512_bf16") || cpuFlags.Contains("amx_bf16") ? DType.BFloat16
        : DType.Float32;

    // The "flags" line of /proc/cpuinfo (Linux); none elsewhere, so auto means f32 there.
    private static readonly Lazy<IReadOnlySet<string>> CpuFlags = new(() =>
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            var flags = line is null ? [] : line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return new HashSet<string>(flags, StringComparer.Ordinal);
        }
        catch (IOException)
        {
            return new HashSet<string>();
        }
        catch (UnauthorizedAccessException)
        {
            return new HashSet<string>();
        }
    });
}
