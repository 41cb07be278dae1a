using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Pipeline.Checkpoints;

/// <summary>
/// A single-file ControlNet (the control_v11p_sd15_*.safetensors layout: control_model.input_hint_block, .input_blocks,
/// .middle_block, .zero_convs, .middle_block_out, .time_embed; some conversions drop the control_model. prefix, others
/// already use diffusers' names). The file records only weights: the architecture is the base U-Net's (diffusers'
/// from_unet), with the hint block's channels read from its tensors. Pickle files are not executed or parsed.
/// </summary>
public static class ControlNetCheckpoint
{
    /// <summary>Loads the ControlNet in <paramref name="path"/> for a U-Net of <paramref name="unet"/>'s config, in evaluation mode.</summary>
    public static ControlNetModel Load(string path, UNet2DConditionModelConfig unet, Device? device = null, DType? dtype = null)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is ".ckpt" or ".pt" or ".pth" or ".bin")
            throw new NotSupportedException($"{path}: pickle checkpoints are not loaded (they can run arbitrary code); convert it to .safetensors first");
        using var file = SafeTensorsFile.Open(path);
        var tensors = Renamed(file);
        try
        {
            var hint = Enumerable.Range(0, 64).Select(i => $"controlnet_cond_embedding.blocks.{i}.weight").TakeWhile(tensors.ContainsKey).ToList();
            if (!tensors.TryGetValue("controlnet_cond_embedding.conv_in.weight", out var convIn) || hint.Count % 2 != 0)
                throw new InvalidDataException($"{path}: not a ControlNet checkpoint (no input_hint_block / controlnet_cond_embedding tensors)");
            // conv_in's output, then each stage's stride-2 conv's output (blocks 1, 3, 5, …)
            int[] embeddingChannels = [(int)convIn.Size(0), .. hint.Where((_, i) => i % 2 == 1).Select(k => (int)tensors[k].Size(0))];
            var config = ControlNetModelConfig.FromUNet(unet, embeddingChannels, (int)convIn.Size(1));
            return Pretrained.Build(() => new ControlNetModel(config), model => LoadInto(model, tensors, path), device, dtype);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Every tensor of the file under its diffusers name.</summary>
    private static Dictionary<string, Tensor> Renamed(SafeTensorsFile file)
    {
        var result = new Dictionary<string, Tensor>();
        try
        {
            var prefixed = file.Keys.Any(k => k.StartsWith(LdmKeyMapping.ControlNetPrefix, StringComparison.Ordinal));
            var keys = file.Keys.Select(k => prefixed && k.StartsWith(LdmKeyMapping.ControlNetPrefix, StringComparison.Ordinal)
                ? k[LdmKeyMapping.ControlNetPrefix.Length..] : k).ToList();
            if (LdmKeyMapping.LastHintIndex(keys) is not { } lastHint)
            {
                // already diffusers' names (a ControlNetModel's safetensors saved as one file)
                foreach (var key in file.Keys) result[key] = file.Load(key);
                return result;
            }
            var mapping = LdmKeyMapping.InferControlNet(keys.Where(k => !k.StartsWith("input_hint_block.", StringComparison.Ordinal)));
            for (int i = 0; i < keys.Count; i++)
            {
                var key = keys[i];
                if (prefixed && ReferenceEquals(key, file.Keys[i])) continue; // a tensor outside control_model. (e.g. a leftover lvlb buffer)
                result[mapping.MapControlNet(key, lastHint).Name] = file.Load(file.Keys[i]);
            }
            return result;
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(file.FilePath, StringComparison.Ordinal))
        {
            foreach (var t in result.Values) t.Dispose();
            throw new InvalidDataException($"{file.FilePath}: {e.Message}", e);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    private static void LoadInto(ControlNetModel model, Dictionary<string, Tensor> tensors, string path)
    {
        try
        {
            Pretrained.RequireFinite(path, tensors);
            model.LoadStateDict(tensors, strict: true);
        }
        catch (StateDictException e)
        {
            throw new InvalidDataException($"{path}: the ControlNet's tensors do not fit the base model's architecture (a ControlNet for another model?): {e.Message}", e);
        }
    }
}
