namespace LatentDiffusion.Pipeline.Checkpoints;

/// <summary>The Stable Diffusion generation a checkpoint belongs to.</summary>
public enum ModelFamily
{
    /// <summary>SD 1.x: CLIP ViT-L/14 text encoder (768-d context), 8 attention heads per block.</summary>
    StableDiffusion1,
    /// <summary>SD 2.x: OpenCLIP ViT-H/14 text encoder (1024-d context), 64-d heads, linear projections.</summary>
    StableDiffusion2,
    /// <summary>SDXL base: CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 (768 + 1280 = 2048-d context), size/crop micro-conditioning.</summary>
    StableDiffusionXL,
    /// <summary>SDXL refiner: OpenCLIP ViT-bigG/14 only (1280-d context), aesthetic-score conditioning.</summary>
    StableDiffusionXLRefiner,
}

/// <summary>What a single-file checkpoint is, inferred from its keys and shapes (each part can be overridden).</summary>
public sealed record CheckpointKind(ModelFamily Family, string PredictionType)
{
    /// <summary>SDXL base or refiner.</summary>
    public bool IsXl => Family is ModelFamily.StableDiffusionXL or ModelFamily.StableDiffusionXLRefiner;

    /// <summary>
    /// diffusers' rule: the width of the first cross-attention key projection tells 1.x (768) from
    /// 2.x (1024). SD 2.x checkpoints are taken as v-prediction (2.1-768, the common one); the
    /// 512-pixel 2.x base models are epsilon, which the caller must say.
    /// </summary>
    public static CheckpointKind Infer(IReadOnlyDictionary<string, long[]> shapes, string path)
    {
        // diffusers' infer_diffusers_model_type: SDXL's OpenCLIP encoder is the second embedder of the base's conditioner
        // and the first of the refiner's (whose first embedder of the base, CLIP ViT-L, it lacks).
        if (shapes.ContainsKey(LdmKeyMapping.XlBaseProbe)) return new CheckpointKind(ModelFamily.StableDiffusionXL, "epsilon");
        if (shapes.ContainsKey(LdmKeyMapping.XlRefinerProbe)) return new CheckpointKind(ModelFamily.StableDiffusionXLRefiner, "epsilon");
        var probe = shapes.Keys.FirstOrDefault(k => k.StartsWith(LdmKeyMapping.UNetPrefix + "input_blocks.", StringComparison.Ordinal) && k.EndsWith(".attn2.to_k.weight", StringComparison.Ordinal))
            ?? throw new InvalidDataException($"{path}: not a Stable Diffusion checkpoint (no U-Net cross-attention under {LdmKeyMapping.UNetPrefix})");
        return shapes[probe][^1] switch
        {
            768 => new CheckpointKind(ModelFamily.StableDiffusion1, "epsilon"),
            // diffusers' "inpainting_v2" (stable-diffusion-2-inpainting) is an epsilon model
            1024 when UNetInChannels(shapes) == 9 => new CheckpointKind(ModelFamily.StableDiffusion2, "epsilon"),
            1024 => new CheckpointKind(ModelFamily.StableDiffusion2, "v_prediction"),
            var width => throw new InvalidDataException($"{path}: unknown model family (cross-attention width {width}; Stable Diffusion 1.x has 768, 2.x has 1024; SDXL checkpoints carry conditioner.embedders.*)"),
        };
    }

    /// <summary>
    /// The U-Net's input channels, from its first convolution (model.diffusion_model.input_blocks.0.0.weight, as diffusers
    /// detects inpainting checkpoints): 4 for ordinary Stable Diffusion, 9 for SD1.5/SD2 inpainting; 4 when absent.
    /// </summary>
    public static int UNetInChannels(IReadOnlyDictionary<string, long[]> shapes) =>
        shapes.TryGetValue(LdmKeyMapping.UNetPrefix + "input_blocks.0.0.weight", out var shape) && shape.Length == 4 ? checked((int)shape[1]) : 4;
}
