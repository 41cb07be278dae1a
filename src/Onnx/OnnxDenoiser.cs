using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// The ONNX Runtime engine's denoiser: a U-Net graph (diffusers' export: sample, timestep, encoder_hidden_states →
/// out_sample; optimum's SDXL export adds text_embeds and time_ids, diffusers' added_cond_kwargs). Names, dtypes and ranks are
/// read from the graph: the timestep may be int64 or float, a scalar, [1] or [batch]; a float16 graph gets its inputs
/// converted at the boundary and returns the sample's dtype.
/// </summary>
public sealed class OnnxDenoiser : IDenoiser
{
    private readonly OnnxSession session;
    private readonly string sampleName, timestepName, hiddenName, outputName;
    private readonly string? textEmbedsName, timeIdsName;
    private readonly UNet2DConditionModelConfig config;

    internal OnnxDenoiser(OnnxSession session, UNet2DConditionModelConfig config)
    {
        this.session = session;
        this.config = config;
        sampleName = session.RequireInput("sample", "sample");
        timestepName = session.RequireInput("timestep", "timestep", "timesteps", "t");
        hiddenName = session.RequireInput("text-embedding", "encoder_hidden_states", "encoder_hidden_state");
        textEmbedsName = session.FindInput("text_embeds");
        timeIdsName = session.FindInput("time_ids");
        session.RejectUnknownInputs(sampleName, timestepName, hiddenName, textEmbedsName, timeIdsName);
        if ((textEmbedsName is null) != (timeIdsName is null))
            throw new InvalidDataException($"{session.Path}: an SDXL U-Net takes both text_embeds and time_ids; the graph's inputs are {OnnxSession.Describe(session.Inputs)}");
        outputName = session.OutputOr("out_sample");
        foreach (var name in new[] { sampleName, timestepName, hiddenName, outputName, textEmbedsName, timeIdsName }.OfType<string>()) _ = session.DTypeOf(name);
        LatentChannels = Static(session.Outputs[outputName].Dimensions, 1) ?? config.OutChannels;
        InChannels = Static(session.Inputs[sampleName].Dimensions, 1) ?? config.InChannels;
    }

    /// <summary>Opens <paramref name="path"/>; <paramref name="config"/> describes the architecture when the folder has a config.json (else SD1.5's).</summary>
    public static OnnxDenoiser Open(string path, UNet2DConditionModelConfig config, OnnxEngineOptions options) =>
        OnnxSession.OpenAs(path, options, session => new OnnxDenoiser(session, config));

    public int LatentChannels { get; }
    public int InChannels { get; }
    public int[]? SampleSize => config.SampleSize?.PerBlock(2, "sample_size");

    /// <summary>The graph's file.</summary>
    public string Path => session.Path;

    /// <summary>Ends ONNX Runtime's profile (opened with <see cref="OnnxEngineOptions.ProfilePrefix"/>) and returns its JSON trace file.</summary>
    public string EndProfiling() => session.EndProfiling();

    /// <summary>Whether the graph takes SDXL's added conditions (text_embeds, time_ids).</summary>
    public bool TakesAddedConditions => textEmbedsName is not null;

    /// <summary>The static widths of text_embeds and time_ids (null where the graph leaves them dynamic); both null without them.</summary>
    public (int? TextEmbeds, int? TimeIds) AddedWidths =>
        (textEmbedsName is null ? null : Static(session.Inputs[textEmbedsName].Dimensions, 1), timeIdsName is null ? null : Static(session.Inputs[timeIdsName].Dimensions, 1));

    /// <summary>The static width of encoder_hidden_states, or null.</summary>
    public int? ContextWidth => Static(session.Inputs[hiddenName].Dimensions, 2);

    public Tensor Forward(Tensor sample, double timestep, DenoiserConditioning conditioning)
    {
        var added = conditioning.TextEmbeds is not null || conditioning.TimeIds is not null;
        if (added && !TakesAddedConditions)
            throw new NotSupportedException($"{Path}: this ONNX U-Net takes no SDXL added conditions (it has no text_embeds and time_ids inputs): it is not an SDXL U-Net");
        if (TakesAddedConditions && (conditioning.TextEmbeds is null || conditioning.TimeIds is null))
            throw new ArgumentException($"{Path}: this SDXL U-Net needs the pooled text embeddings and the time ids (text_embeds, time_ids)");
        if (conditioning.DownBlockAdditionalResiduals is not null || conditioning.MidBlockAdditionalResidual is not null)
            throw new NotSupportedException($"{Path}: this ONNX U-Net takes no ControlNet residuals; run ControlNets on libtorch (--engine torch)");
        using var scope = DisposeScope.Enter();
        var x = OnnxTensors.Prepare(sample, session.DTypeOf(sampleName));
        var hidden = OnnxTensors.Prepare(conditioning.EncoderHiddenStates, session.DTypeOf(hiddenName));
        var t = Timestep(timestep, sample.Size(0));
        var output = Tensors.Empty([sample.Size(0), LatentChannels, sample.Size(2), sample.Size(3)], session.DTypeOf(outputName));
        var inputs = new List<(string, Tensor)> { (sampleName, x), (timestepName, t), (hiddenName, hidden) };
        if (TakesAddedConditions)
        {
            inputs.Add((textEmbedsName!, OnnxTensors.Prepare(conditioning.TextEmbeds!, session.DTypeOf(textEmbedsName!))));
            inputs.Add((timeIdsName!, OnnxTensors.Prepare(conditioning.TimeIds!, session.DTypeOf(timeIdsName!))));
        }
        session.Run(inputs, [(outputName, output)]);
        return scope.Keep(output.DType == sample.DType ? output : output.To(sample.DType));
    }

    // diffusers' OnnxStableDiffusionPipeline: np.array([t], dtype=<the graph's timestep type>) (an integer type truncates as
    // numpy's cast does); a graph with a [batch] or scalar timestep gets that shape.
    private Tensor Timestep(double timestep, long batch)
    {
        var dims = session.Inputs[timestepName].Dimensions;
        var dtype = session.DTypeOf(timestepName);
        var value = dtype is DType.Float32 or DType.Float16 or DType.Float64 or DType.BFloat16 ? timestep : Math.Truncate(timestep);
        long[] shape = dims.Length switch
        {
            0 => [],
            _ => [dims[0] > 0 ? dims[0] : batch, .. dims.Skip(1).Select(d => (long)Math.Max(d, 1))],
        };
        return Tensors.Full(shape, value, dtype);
    }

    public double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention) =>
        // ONNX Runtime's kernels keep no score maps whole where it fuses attention; the unfused count is the safe side.
        MemoryEstimate.LatentUNetStep(config, latentHeight, latentWidth, rows, elementSize, attention with { Fused = false });

    private static int? Static(int[] dims, int axis) => dims.Length > axis && dims[axis] > 0 ? dims[axis] : null;

    public void Dispose() => session.Dispose();
}
