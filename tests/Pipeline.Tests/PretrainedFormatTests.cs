using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Every model loads and saves through one <see cref="PretrainedFormat{TModel, TConfig}"/>: the same
/// variant files, dtype and device handling, and strict checks whose error lists every name.
/// </summary>
public sealed class PretrainedFormatTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-pretrained-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static string Fixture(string relative) =>
        Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", relative);

    [Fact]
    public void TheUNetRoundTripsThroughAnFp16Variant() =>
        RoundTripsThroughAnFp16Variant(UNet2DConditionModel.Format, Fixture("latentunet/sd_tiny/unet"), Pretrained.DiffusersWeights);

    [Fact]
    public void TheVaeRoundTripsThroughAnFp16Variant() =>
        RoundTripsThroughAnFp16Variant(AutoencoderKL.Format, Fixture("autoencoder/sd_tiny_vae"), Pretrained.DiffusersWeights);

    [Fact]
    public void TheTextEncoderRoundTripsThroughAnFp16Variant() =>
        RoundTripsThroughAnFp16Variant(ClipTextModel.Format, Fixture("textencoder/clip/sd_tiny_text_encoder"), Pretrained.TransformersWeights);

    [Fact]
    public void TheTinyAutoencoderRoundTripsThroughAnFp16Variant()
    {
        var source = Path.Combine(directory, "taesd");
        using (var random = new AutoencoderTiny(new AutoencoderTinyConfig { EncoderBlockOutChannels = [8, 8], DecoderBlockOutChannels = [8, 8], NumEncoderBlocks = [1, 1], NumDecoderBlocks = [1, 1] }))
            random.Save(source);
        RoundTripsThroughAnFp16Variant(AutoencoderTiny.Format, source, Pretrained.DiffusersWeights);
    }

    private void RoundTripsThroughAnFp16Variant<TModel, TConfig>(PretrainedFormat<TModel, TConfig> format, string source, string weightsName)
        where TModel : Module
    {
        using var original = format.Load(source);
        Assert.False(original.IsTraining);
        var saved = Path.Combine(directory, typeof(TModel).Name);
        using (var half = format.Load(source, dtype: DType.Float16)) format.Save(half, saved, variant: "fp16");
        Assert.True(File.Exists(Path.Combine(saved, weightsName + ".fp16.safetensors")));
        Assert.True(File.Exists(Path.Combine(saved, Pretrained.ConfigName)));

        // Asked for float32, the fp16 file loads into float32 parameters equal to the originals rounded to fp16.
        using var reloaded = format.Load(saved, Device.CPU, DType.Float32, variant: "fp16");
        var expected = original.StateDict();
        var actual = reloaded.StateDict();
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (name, tensor) in expected)
        {
            if (!tensor.DType.IsFloatingPoint()) continue;
            Assert.Equal(DType.Float32, actual[name].DType);
            using var rounded = tensor.To(DType.Float16).To(DType.Float32);
            Assert.True(rounded.Equal(actual[name]), name);
        }
    }

    [Fact]
    public void AMismatchedWeightFileListsEveryMissingUnexpectedAndMisshapenNameAndTheFile()
    {
        var source = Fixture("autoencoder/sd_tiny_vae");
        var broken = Path.Combine(directory, "broken");
        Directory.CreateDirectory(broken);
        File.Copy(Path.Combine(source, Pretrained.ConfigName), Path.Combine(broken, Pretrained.ConfigName));
        var state = SafeTensorsFile.LoadFile(Pretrained.FindWeights(source, Pretrained.DiffusersWeights));
        try
        {
            var removed = state.Keys.Where(k => k.StartsWith("decoder.up_blocks.0.", StringComparison.Ordinal)).ToList();
            Assert.True(removed.Count > 10); // more than any "first ten" listing would show
            foreach (var key in removed)
            {
                state[key.Replace("decoder.", "old_decoder.", StringComparison.Ordinal)] = state[key];
                state.Remove(key);
            }
            state["quant_conv.bias"].Dispose();
            state["quant_conv.bias"] = Tensors.Zeros([3]);
            var file = Path.Combine(broken, "diffusion_pytorch_model.safetensors");
            SafeTensorsFile.Save(file, state);

            var e = Assert.Throws<InvalidDataException>(() => AutoencoderKL.FromPretrained(broken));
            Assert.StartsWith(file, e.Message);
            Assert.Contains("quant_conv.bias (expected [", e.Message);
            foreach (var key in removed)
            {
                Assert.Contains(key, e.Message);
                Assert.Contains(key.Replace("decoder.", "old_decoder.", StringComparison.Ordinal), e.Message);
            }
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    [Fact]
    public void AConfigOfAnotherClassIsRefusedNamingTheFileAndField()
    {
        var folder = Path.Combine(directory, "wrong-class");
        Directory.CreateDirectory(folder);
        var config = File.ReadAllText(Path.Combine(Fixture("autoencoder/sd_tiny_vae"), Pretrained.ConfigName))
            .Replace("\"AutoencoderKL\"", "\"UNet2DConditionModel\"", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(folder, Pretrained.ConfigName), config);
        var e = Assert.Throws<Torch.Config.ConfigException>(() => AutoencoderKL.FromPretrained(folder));
        Assert.Equal($"{Path.Combine(folder, Pretrained.ConfigName)}: field '_class_name' is \"UNet2DConditionModel\", expected \"AutoencoderKL\"", e.Message);
    }

    [Fact]
    public void AMissingFolderIsNamed()
    {
        var missing = Path.Combine(directory, "nowhere");
        var e = Assert.Throws<FileNotFoundException>(() => UNet2DConditionModel.FromPretrained(missing));
        Assert.Equal($"{missing}: model folder not found", e.Message);
    }
}
