using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' UNet2DConditionModel, the latent-diffusion U-Net of Stable Diffusion (Rombach et al. 2022):
/// it predicts the noise ε in latents z_t at timestep t, conditioned on text states c through
/// cross-attention:
/// <code>
/// emb  = time_embedding(time_proj(t), timestep_cond)        (+ class embedding)
/// h    = conv_in(z_t)
/// down: h, skips += down_block(h, emb, c)                    resnets + transformers, downsample
/// mid:  h = mid_block(h, emb, c)                             resnet, transformer, resnet
/// up:   h = up_block(h, skips.pop(…), emb, c)                resnets over [h, skip] + transformers, upsample
/// ε    = conv_out(silu(conv_norm_out(h)))
/// </code>
/// Submodules carry diffusers' attribute names, so its safetensors load as they are and
/// <see cref="Save"/> writes a folder diffusers loads.
/// </summary>
public sealed class UNet2DConditionModel : Module
{
    private readonly Conv2d convIn;
    private readonly UNetParts parts;
    private readonly Linear? encoderHidProj;
    private readonly TextTimeEmbedding? addEmbedding;
    private readonly Module<Tensor, Tensor>? timeEmbedAct;
    private readonly ModuleList<Module> downBlocks;
    private readonly IMidBlock? midBlock;
    private readonly ModuleList<Module> upBlocks;
    private readonly GroupNorm convNormOut;
    private readonly Module<Tensor, Tensor> convAct;
    private readonly Conv2d convOut;

    public UNet2DConditionModelConfig Config { get; }

    /// <summary>Number of upsampling stages: inputs whose size is not a multiple of 2^this get explicit upsample sizes.</summary>
    public int NumUpsamplers { get; }

    /// <param name="generator">Draws the initial weights (libtorch's global generator when null).</param>
    public UNet2DConditionModel(UNet2DConditionModelConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        var channels = config.BlockOutChannels;
        int n = channels.Length;
        int groups = config.NormNumGroups!.Value;

        convIn = RegisterModule("conv_in", new Conv2d(config.InChannels, channels[0], config.ConvInKernel, padding: (config.ConvInKernel - 1) / 2,
            generator: generator));

        // time (and class) embedding, down and mid blocks: the parts a ControlNet shares
        parts = UNetParts.CreateTime(this, config, generator);

        if (config.EncoderHidDim is { } hid)
            encoderHidProj = RegisterModule("encoder_hid_proj", new Linear(hid, config.CrossAttentionDim.Value, generator: generator));
        if (config.AdditionEmbedType == "text_time") addEmbedding = new TextTimeEmbedding(this, config, parts.TimeEmbedDim, generator);
        if (config.TimeEmbeddingActFn is { } act) timeEmbedAct = RegisterModule("time_embed_act", Activations.Create(act, "time_embedding_act_fn"));

        var heads = config.AttentionHeadDim.PerBlock(n, "attention_head_dim");
        var layers = config.LayersPerBlock.PerBlock(n, "layers_per_block");
        var resnet = parts.Resnet;
        downBlocks = parts.CreateDownBlocks(this, generator);
        midBlock = parts.CreateMidBlock(this, generator);

        upBlocks = RegisterModule("up_blocks", new ModuleList<Module>());
        var reversed = channels.Reverse().ToArray();
        long output = reversed[0];
        for (int i = 0; i < n; i++)
        {
            bool final = i == n - 1;
            long previous = output;
            output = reversed[i];
            long input = reversed[Math.Min(i + 1, n - 1)];
            int r = n - 1 - i; // the settings of the mirrored down block
            if (!final) NumUpsamplers++;
            // diffusers indexes attention_head_dim without reversing it here
            upBlocks.Add(UNetBlocks.GetUpBlock(config.UpBlockTypes[i], $"up_block_types[{i}]", layers[r] + 1, input, output, previous, resnet,
                addUpsample: !final, parts.Attention(r), attentionHeadDim: heads[i], generator: generator));
        }

        convNormOut = RegisterModule("conv_norm_out", new GroupNorm(groups, channels[0], config.NormEps));
        convAct = RegisterModule("conv_act", Activations.Create(config.ActFn));
        convOut = RegisterModule("conv_out", new Conv2d(channels[0], config.OutChannels, config.ConvOutKernel, padding: (config.ConvOutKernel - 1) / 2,
            generator: generator));
    }

    /// <summary>How a UNet2DConditionModel lives in a diffusers folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    public static PretrainedFormat<UNet2DConditionModel, UNet2DConditionModelConfig> Format { get; } = new()
    {
        ReadConfig = UNet2DConditionModelConfig.Load,
        Create = config => new UNet2DConditionModel(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, UNet2DConditionModelConfig.ClassName),
    };

    /// <summary>Loads a diffusers UNet2DConditionModel folder (config.json + diffusion_pytorch_model[.variant].safetensors), in evaluation mode.</summary>
    public static UNet2DConditionModel FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors so that diffusers' from_pretrained loads them.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    /// <summary>The noise predicted at a (possibly fractional) <paramref name="timestep"/> shared by the batch.</summary>
    public Tensor Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor? timestepCond = null, Tensor? classLabels = null,
        UNetResiduals? additionalResiduals = null, AddedConditions? added = null)
    {
        // diffusers turns a Python float into a float64 tensor; the embedding computes in float32 either way.
        using var t = Tensors.Scalar(timestep, DType.Float64, sample.Device);
        return Forward(sample, t, encoderHiddenStates, timestepCond, classLabels, additionalResiduals, added);
    }

    /// <summary>True for addition_embed_type "text_time" (SDXL): a forward needs <see cref="AddedConditions"/>.</summary>
    public bool TakesAddedConditions => addEmbedding is not null;

    /// <summary>"text_time" models: the width of add_embedding's input (pooled text dim + time ids × addition_time_embed_dim).</summary>
    public int? AddedEmbeddingInputDim => addEmbedding?.InputDim;

    /// <summary>
    /// The noise predicted for latents <paramref name="sample"/> [N, C, H, W] at <paramref name="timestep"/>
    /// (0-dim, [1] or [N]; integer or fractional) given text states <paramref name="encoderHiddenStates"/>
    /// [N, S, cross_attention_dim]. <paramref name="timestepCond"/> [N, time_cond_proj_dim] feeds LCM's
    /// guidance embedding; <paramref name="classLabels"/> class-conditional models; <paramref name="additionalResiduals"/>
    /// a ControlNet's outputs, added to the skip connections and the mid block's output; <paramref name="added"/> (diffusers'
    /// added_cond_kwargs) the pooled text embeddings and time ids of addition_embed_type "text_time" (SDXL).
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor? timestepCond = null, Tensor? classLabels = null,
        UNetResiduals? additionalResiduals = null, AddedConditions? added = null)
    {
        // Inference on the CPU: the batch's samples as concurrent streams, each on its share of the threads (BatchStreams).
        if (BatchStreams.TryRun(sample, s => Pass(s.Of(sample)!, s.Of(timestep)!, s.Of(encoderHiddenStates)!, s.Of(timestepCond),
                s.Of(classLabels), additionalResiduals?.Slice(s), added?.Slice(s)), out var output))
            return output;
        return Pass(sample, timestep, encoderHiddenStates, timestepCond, classLabels, additionalResiduals, added);
    }

    private Tensor Pass(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor? timestepCond, Tensor? classLabels,
        UNetResiduals? additionalResiduals, AddedConditions? added)
    {
        using var scope = DisposeScope.Enter();

        // Inputs whose size is not a multiple of the total upsampling factor need explicit upsample sizes.
        long factor = 1L << NumUpsamplers;
        bool forwardUpsampleSize = sample.Size(-1) % factor != 0 || sample.Size(-2) % factor != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        // 1. time (and class) embedding
        var emb = parts.Embed(sample, timestep, timestepCond, classLabels);
        if (addEmbedding is not null) emb = emb + addEmbedding.Forward(added, sample.Size(0), emb.DType);
        else if (added is not null)
            throw new ArgumentException("added conditions (pooled text embeddings, time ids) were given but the U-Net has no addition_embed_type \"text_time\"");
        if (timeEmbedAct is not null) emb = timeEmbedAct.Forward(emb);
        var context = encoderHidProj is not null ? encoderHidProj.Forward(encoderHiddenStates) : encoderHiddenStates;

        // 2. down: every state is kept for the skip connections
        var h = convIn.Forward(sample);
        var skips = UNetParts.Down(downBlocks, h, emb, context);
        h = skips[^1];
        // ControlNet: its residuals are added to the skip connections (not to the mid block's input, which is the last
        // down state as it was), as diffusers' down_block_additional_residuals
        if (additionalResiduals is not null) skips = additionalResiduals.AddToSkips(skips);

        // 3. mid
        if (midBlock is not null) h = midBlock.Forward(h, emb, context);
        if (additionalResiduals is not null) h = h + additionalResiduals.Mid; // mid_block_additional_residual

        // 4. up: each block consumes its skips, which are freed at once
        for (int i = 0; i < upBlocks.Count; i++)
        {
            var block = (IUpBlock)upBlocks[i];
            var taken = skips.GetRange(skips.Count - block.ResnetCount, block.ResnetCount);
            skips.RemoveRange(skips.Count - block.ResnetCount, block.ResnetCount);
            (long, long)? upsampleSize = null;
            if (i < upBlocks.Count - 1 && forwardUpsampleSize) upsampleSize = (skips[^1].Size(2), skips[^1].Size(3));
            var next = block.Forward(h, taken, emb, context, upsampleSize);
            if (!taken.Contains(h)) h.Dispose();
            foreach (var s in taken) s.Dispose();
            h = next;
        }

        // 5. out
        var output = convOut.Forward(Activations.GroupNormThen(convNormOut, convAct, h));
        return scope.Keep(output);
    }
}
