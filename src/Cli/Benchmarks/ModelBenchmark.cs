using System.Diagnostics;
using System.Globalization;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>What <c>ldm bench unet|vae|text --json</c> prints.</summary>
public sealed record ModelBenchResult(
    string Model,
    string Config,
    string Input,
    string Dtype,
    string Device,
    long Parameters,
    double Seconds,
    double Gflop,
    double Gflops,
    double PeakRssMb,
    double? CudaMemoryUsedMb,
    double? F32Seconds,
    double? ParityMaxAbsDiff,
    double? OutputMaxAbs,
    int Repeat,
    int Threads,
    string Libtorch,
    string FlopMethod,
    string Engine = "libtorch",
    ModelProfile? Profile = null,
    int Streams = 1);

/// <summary>Whether <c>ldm bench</c> profiles one more forward pass: no, by operator, or by operator and input shapes.</summary>
public enum ProfileMode { None, ByOp, ByShape }

/// <summary>One model forward pass to time: the module, its inputs, and how to run it.</summary>
internal sealed class BenchTarget(Module model, Tensor[] inputs, Func<Module, Tensor[], Tensor> forward, double flops, string input) : IDisposable
{
    public Module Model { get; } = model;
    public Tensor[] Inputs { get; private set; } = inputs;
    public double Flops { get; } = flops;
    public string Input { get; } = input;

    /// <summary>Another engine's forward over the same inputs (ONNX Runtime on the exported model), replacing the module's.</summary>
    public Func<Tensor[], Tensor>? Engine { get; set; }

    /// <summary>The other engine's own profile of its last run (ONNX Runtime's profiler), when it keeps one.</summary>
    public Func<ModelProfile>? EngineProfile { get; set; }

    /// <summary>Disposed with the target (the other engine's session).</summary>
    public IDisposable? EngineResources { get; set; }

    public Tensor Run() => Engine is { } engine ? engine(Inputs) : forward(Model, Inputs);

    /// <summary>Moves the module and its floating-point inputs to <paramref name="dtype"/> (integer inputs, token ids, stay).</summary>
    public void Convert(DType dtype)
    {
        Model.To(dtype);
        Inputs = Inputs.Select(t =>
        {
            if (!t.DType.IsFloatingPoint()) return t;
            var converted = t.To(dtype);
            t.Dispose();
            return converted;
        }).ToArray();
    }

    /// <summary>Moves the module and the inputs to <paramref name="device"/>.</summary>
    public void MoveTo(Device device)
    {
        Model.To(device);
        Inputs = Inputs.Select(t =>
        {
            var moved = t.To(device);
            t.Dispose();
            return moved;
        }).ToArray();
    }

    public void Dispose()
    {
        EngineResources?.Dispose();
        Model.Dispose();
        foreach (var t in Inputs) t.Dispose();
    }
}

/// <summary>
/// Times one forward pass of a Stable Diffusion model built from its config with random weights
/// (every parameter ~ N(0, 0.02): timing does not depend on the values, and this keeps them free of
/// NaN and denormals): one warm-up, then the median of <c>repeat</c> runs, under inference mode.
/// With bf16 the same weights and inputs run first in f32 (timed as well) and the bf16 output's largest
/// absolute difference from the f32 output is reported.
/// </summary>
public static class ModelBenchmark
{
    public const string FlopMethod = "analytic from the config: 2·MACs of every conv, linear and attention matmul (see Benchmarks/FlopCounter.cs)";
    public const ulong WeightSeed = 0;

    /// <param name="onnx">Time ONNX Runtime on the same weights, exported by <see cref="Onnx.Export.UNetExport"/>, instead of libtorch.</param>
    public static ModelBenchResult UNet(string configPath, int size, int batch, DType dtype, Device device, int repeat, CancellationToken cancellationToken = default, bool onnx = false,
        bool f32Reference = true, ProfileMode profile = ProfileMode.None)
    {
        if (size < 8 || size % 8 != 0) throw new ArgumentException($"--size must be a positive multiple of 8, got {size}");
        var config = UNet2DConditionModelConfig.Load(configPath);
        var crossDim = config.CrossAttentionDim.PerBlock(config.BlockOutChannels.Length, "cross_attention_dim")[0];
        long latent = size / 8;
        const long tokens = 77;
        return Measure("UNet2DConditionModel", configPath, dtype, device, repeat, f32Reference, profile, cancellationToken, onnx ? t => OnnxUNet.Attach(t, profile != ProfileMode.None) : null, generator =>
        {
            UNet2DConditionModel model;
            using (Init.SkipInitialization()) model = new UNet2DConditionModel(config);
            var latents = Tensors.Randn([batch, config.InChannels, latent, latent], generator);
            var text = Tensors.Randn([batch, tokens, crossDim], generator);
            if (!model.TakesAddedConditions)
                return new BenchTarget(model, [latents, text], (m, x) => ((UNet2DConditionModel)m).Forward(x[0], 500, x[1]),
                    FlopCounter.UNet2DCondition(config, batch, latent, latent, tokens),
                    $"latents [{batch}, {config.InChannels}, {latent}, {latent}] ({size}×{size} px), text [{batch}, {tokens}, {crossDim}], t = 500");
            // SDXL ("text_time"): the pooled text embedding and the six size/crop ids of a size × size image (the added embedding's FLOPs are negligible).
            var pooled = Tensors.Randn([batch, config.ProjectionClassEmbeddingsInputDim!.Value - 6 * config.AdditionTimeEmbedDim!.Value], generator);
            using var ids = Tensor.From(Enumerable.Range(0, batch).SelectMany(_ => new float[] { size, size, 0, 0, size, size }).ToArray(), batch, 6);
            return new BenchTarget(model, [latents, text, pooled, ids.Clone()],
                (m, x) => ((UNet2DConditionModel)m).Forward(x[0], 500, x[1], added: new AddedConditions(x[2], x[3])),
                FlopCounter.UNet2DCondition(config, batch, latent, latent, tokens),
                $"latents [{batch}, {config.InChannels}, {latent}, {latent}] ({size}×{size} px), text [{batch}, {tokens}, {crossDim}], pooled [{batch}, {pooled.Size(1)}], time ids [{batch}, 6], t = 500");
        });
    }

    /// <param name="tiling">Decode in overlapping tiles blended as diffusers does (what makes 1024×1024 fit in memory).</param>
    /// <param name="slicing">Decode one image of the batch at a time.</param>
    public static ModelBenchResult VaeDecode(string configPath, int latentSize, int batch, DType dtype, Device device, int repeat,
        bool tiling = false, bool slicing = false, CancellationToken cancellationToken = default, bool f32Reference = true, ProfileMode profile = ProfileMode.None)
    {
        if (latentSize < 1) throw new ArgumentException($"--latent-size must be positive, got {latentSize}");
        var config = AutoencoderKLConfig.Load(configPath);
        return Measure("AutoencoderKL.decode", configPath, dtype, device, repeat, f32Reference, profile, cancellationToken, null, generator =>
        {
            AutoencoderKL model;
            using (Init.SkipInitialization()) model = new AutoencoderKL(config);
            model.UseTiling = tiling;
            model.UseSlicing = slicing;
            var latents = Tensors.Randn([batch, config.LatentChannels, latentSize, latentSize], generator);
            var pixels = latentSize * config.DownscaleFactor;
            return new BenchTarget(model, [latents], (m, x) => ((AutoencoderKL)m).Decode(x[0]),
                FlopCounter.VaeDecode(config, batch, latentSize, latentSize),
                $"latents [{batch}, {config.LatentChannels}, {latentSize}, {latentSize}] → {pixels}×{pixels} image"
                + (tiling ? $", tiled ({model.TileSampleMinSize}×{model.TileSampleMinSize} px tiles)" : "") + (slicing ? ", sliced" : ""));
        });
    }

    public static ModelBenchResult TextEncoder(string configPath, int batch, DType dtype, Device device, int repeat, CancellationToken cancellationToken = default,
        bool f32Reference = true, ProfileMode profile = ProfileMode.None)
    {
        var config = ClipTextConfig.Load(configPath);
        long tokens = config.MaxPositionEmbeddings;
        return Measure("CLIPTextModel", configPath, dtype, device, repeat, f32Reference, profile, cancellationToken, null, generator =>
        {
            ClipTextModel model;
            using (Init.SkipInitialization()) model = new ClipTextModel(config);
            var ids = Tensors.Randint(0, config.VocabSize, [batch, tokens], generator);
            return new BenchTarget(model, [ids], (m, x) =>
            {
                var output = ((ClipTextModel)m).Forward(x[0]);
                output.PoolerOutput.Dispose();
                return output.LastHiddenState;
            }, FlopCounter.ClipText(config, batch, tokens), $"token ids [{batch}, {tokens}]");
        });
    }

    private static ModelBenchResult Measure(string name, string configPath, DType dtype, Device device, int repeat, bool f32Reference, ProfileMode profile,
        CancellationToken cancellationToken, Func<BenchTarget, string>? otherEngine, Func<Generator, BenchTarget> build)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        if (dtype is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"unsupported dtype {dtype} (use f32 or bf16)");
        // Built and converted outside inference mode, as a pipeline loads its models: inference tensors
        // have no version counter, so weights made in inference mode are never prepacked (Conv2d).
        using var noGrad = Autograd.NoGrad();
        using var generator = new Generator(WeightSeed);
        var bf16Only = dtype == DType.BFloat16 && !f32Reference;
        BenchTarget target;
        // The weights are made, converted and packed as a pipeline loads them: each in its own mapping, so that what
        // is freed on the way goes back to the system (NativeHeap, issue 19).
        using (NativeHeap.MapWeights())
        {
            target = build(generator);
            // Without the f32 reference, bf16 from the start: the unwritten f32 tensors convert for free, the weights
            // are drawn in bf16, and the peak memory is the bf16 model's (issue 19).
            if (bf16Only) target.Convert(DType.BFloat16);
            foreach (var p in target.Model.Parameters()) p.Normal_(0, 0.02, generator);
            // Frozen, as a pipeline's models are: a convolution then keeps only its prepacked weight (issue 19).
            target.Model.RequiresGrad(false);
            if (device.Type == DeviceType.Cpu && !(dtype == DType.BFloat16 && f32Reference)) target.Model.PrepackForInference();
        }
        using var disposeTarget = target;
        if (device.Type != DeviceType.Cpu)
        {
            target.MoveTo(device);
        }
        target.Model.Eval();
        var parameters = target.Model.ParameterCount;
        var engine = "libtorch";
        if (otherEngine is not null)
        {
            if (dtype != DType.Float32 || device.Type != DeviceType.Cpu) throw new ArgumentException("--engine onnx benchmarks f32 on the CPU");
            engine = otherEngine(target);
        }

        double? f32Seconds = null, parity = null, outputMax = null;
        var streams = 1;
        if (dtype == DType.BFloat16 && !bf16Only)
        {
            using var reference = Time(target, repeat, cancellationToken, out var seconds, out _);
            f32Seconds = seconds;
            target.Convert(DType.BFloat16);
            using var output = Time(target, repeat, cancellationToken, out var bf16Seconds, out streams);
            using (DisposeScope.Enter())
            {
                parity = MaxAbs(output.To(DType.Float32) - reference);
                outputMax = MaxAbs(reference);
            }
            return Result(bf16Seconds, Profile(target, profile, streams, cancellationToken));
        }
        using (var output = Time(target, repeat, cancellationToken, out var f32, out streams))
        {
            using (DisposeScope.Enter()) outputMax = MaxAbs(output);
            return Result(f32, Profile(target, profile, streams, cancellationToken));
        }

        ModelBenchResult Result(double seconds, ModelProfile? profiled) => new(
            Model: name,
            Config: configPath,
            Input: target.Input,
            Dtype: dtype == DType.BFloat16 ? "bf16" : "f32",
            Device: device.ToString(),
            Parameters: parameters,
            Seconds: Math.Round(seconds, 4),
            Gflop: Math.Round(target.Flops / 1e9, 4),
            Gflops: Math.Round(target.Flops / 1e9 / seconds, 2),
            PeakRssMb: Math.Round(PeakRssBytes() / 1048576.0, 1),
            CudaMemoryUsedMb: device.Type == DeviceType.Cpu ? null : Math.Round(TorchRuntime.CudaMemory(device.Index).Used / 1048576.0, 1),
            F32Seconds: f32Seconds is { } f ? Math.Round(f, 4) : null,
            ParityMaxAbsDiff: parity,
            OutputMaxAbs: outputMax,
            Repeat: repeat,
            Threads: TorchRuntime.Threads,
            Libtorch: TorchRuntime.LibTorchVersion,
            FlopMethod: FlopMethod,
            Engine: engine,
            Profile: profiled,
            Streams: streams);
    }

    /// <summary>
    /// One more forward pass after the timed ones, profiled (<see cref="ModelProfile"/>): libtorch's top-level operators
    /// through <see cref="OpProfiler"/>, or the other engine's own profile (<see cref="BenchTarget.EngineProfile"/>).
    /// </summary>
    private static ModelProfile? Profile(BenchTarget target, ProfileMode mode, int streams, CancellationToken cancellationToken)
    {
        if (mode == ProfileMode.None) return null;
        cancellationToken.ThrowIfCancellationRequested();
        using var inference = Autograd.InferenceMode();
        if (target.EngineProfile is { } engineProfile) return engineProfile();
        Tensor output;
        IReadOnlyList<OpProfileEntry> entries;
        var watch = Stopwatch.StartNew();
        using (var profiler = OpProfiler.Start(byShape: mode == ProfileMode.ByShape))
        {
            output = target.Run();
            watch.Stop();
            entries = profiler.Stop();
        }
        output.Dispose();
        // A profile runs the batch as one pass (the streams' operators would overlap in it): say so where the timed runs did not.
        var source = "libtorch top-level operators (RecordFunction), one forward after the timed runs" +
                     (streams > 1 ? $" (the batch as one pass; the timed runs ran it as {streams} streams)" : "");
        return ModelProfile.From(source, watch.Elapsed.TotalSeconds, entries);
    }

    private static double MaxAbs(Tensor t) => t.Abs().Max().To(Device.CPU, DType.Float64).ToArray<double>()[0];

    /// <summary>
    /// One warm-up run, then <paramref name="repeat"/> timed runs; returns the last output (in f32), the median time and
    /// the streams every timed run ran as (<see cref="BatchStreams"/>; 1 where the model does not split its batch).
    /// </summary>
    private static Tensor Time(BenchTarget target, int repeat, CancellationToken cancellationToken, out double medianSeconds, out int streams)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var inference = Autograd.InferenceMode();
        var runs = BatchStreams.Runs;
        target.Run().Dispose(); // warm-up
        var samples = new double[repeat];
        Tensor? last = null;
        for (int i = 0; i < repeat; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            last?.Dispose();
            // Each pass starts with an empty cache of large CPU blocks, as the decode of a generation does (the
            // pipeline trims it when a generation ends): what it reuses is the pass's own freed blocks only.
            CpuCache.Trim();
            var watch = Stopwatch.StartNew();
            last = target.Run();
            if (last.Device.Type != DeviceType.Cpu) TorchRuntime.CudaSynchronize(last.Device.Index);
            samples[i] = watch.Elapsed.TotalSeconds;
        }
        medianSeconds = OpsBenchmark.Median(samples);
        streams = BatchStreams.Runs - runs == repeat + 1 && target.Engine is null ? BatchStreams.For(target.Inputs[0]) : 1;
        var result = last!.To(DType.Float32);
        last.Dispose();
        return result;
    }

    /// <summary>
    /// The bytes of a "VmHWM:" line of /proc/self/status, null for another line. The kernel writes a tab and the KiB
    /// right-aligned in 8 columns ("VmHWM:\t    2184 kB"), so from 10^7 KiB (9.5 GiB, an SDXL U-Net) no space is left
    /// between the tab and the number: both separate the fields.
    /// </summary>
    public static long? VmHwmBytes(string line)
    {
        if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) return null;
        var parts = line["VmHWM:".Length..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Resets the peak resident set to the current one (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0); elsewhere it stays the process's.</summary>
    public static void ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The process's peak resident set (VmHWM in /proc/self/status), in bytes; 0 where there is none.</summary>
    public static long PeakRssBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (VmHwmBytes(line) is { } bytes) return bytes;
        }
        catch (IOException)
        {
        }
        return 0;
    }
}
