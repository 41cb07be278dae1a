using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// LoRAs on the tiny SDXL model: kohya's lora_unet_ / lora_te1_ / lora_te2_ and PEFT's unet. / text_encoder. / text_encoder_2.
/// keys reach the U-Net and both text encoders; an SD 1.x LoRA is refused before any weight changes.
/// </summary>
public sealed class SdxlLoraTests(ITestOutputHelper output) : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ld-xl-lora-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private static StableDiffusionPipeline Load() => StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);

    private sealed record Target(string Component, string Path, Tensor Weight, Tensor Down, Tensor Up, double? Alpha);

    // A few attention layers of each component: the first Linear layers whose path names the wanted projections.
    private static List<Target> Targets(StableDiffusionPipeline pipe, Generator g, bool alphas)
    {
        var components = new (string Name, Module Module, string[] Wanted)[]
        {
            ("unet", pipe.Unet, ["attn1.to_q", "attn2.to_k", "attn1.to_out.0"]),
            ("text_encoder", pipe.TextEncoder, ["layers.0.self_attn.q_proj", "layers.1.mlp.fc1"]),
            ("text_encoder_2", ((Engines.TorchTextEncoder)pipe.Models.TextEncoder2!).Module, ["layers.0.self_attn.v_proj", "layers.1.self_attn.out_proj"]),
        };
        var targets = new List<Target>();
        foreach (var (name, module, wanted) in components)
        {
            foreach (var w in wanted)
            {
                var (path, layer) = module.NamedModules().Select(m => (Path: m.Item1, Module: m.Item2)).First(m => m.Path.EndsWith(w, StringComparison.Ordinal) && m.Module is Linear);
                var weight = ((Linear)layer).Weight;
                const int rank = 4;
                var down = Tensors.Randn([rank, weight.Size(1)], g);
                var up = Tensors.Randn([weight.Size(0), rank], g) * 0.1;
                targets.Add(new Target(name, path, weight, down, up, alphas ? 2.0 + targets.Count : null));
            }
        }
        return targets;
    }

    private string Save(string name, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        var path = Path.Combine(folder, name);
        SafeTensorsFile.Save(path, tensors);
        return path;
    }

    private static string KohyaPrefix(string component) => component switch { "unet" => "lora_unet_", "text_encoder" => "lora_te1_", _ => "lora_te2_" };

    private static IEnumerable<KeyValuePair<string, Tensor>> Kohya(List<Target> targets)
    {
        foreach (var t in targets)
        {
            var key = KohyaPrefix(t.Component) + t.Path.Replace('.', '_');
            yield return KeyValuePair.Create(key + ".lora_down.weight", t.Down);
            yield return KeyValuePair.Create(key + ".lora_up.weight", t.Up);
            if (t.Alpha is { } a) yield return KeyValuePair.Create(key + ".alpha", Tensors.Full([], a));
        }
    }

    private static IEnumerable<KeyValuePair<string, Tensor>> Peft(List<Target> targets) => targets.SelectMany(t => new[]
    {
        KeyValuePair.Create($"{t.Component}.{t.Path}.lora_A.weight", t.Down),
        KeyValuePair.Create($"{t.Component}.{t.Path}.lora_B.weight", t.Up),
    });

    private static Dictionary<Tensor, Tensor> Snapshot(List<Target> targets) =>
        targets.ToDictionary(t => t.Weight, t => t.Weight.Clone(), new ReferenceEqualityComparer<Tensor>());

    private void AssertMerged(List<Target> targets, Dictionary<Tensor, Tensor> before, double scale)
    {
        foreach (var t in targets)
        {
            using var scope = DisposeScope.Enter();
            var factor = scale * (t.Alpha ?? t.Down.Size(0)) / t.Down.Size(0);
            var expected = t.Up.MatMul(t.Down) * factor;
            var delta = t.Weight - before[t.Weight];
            var error = TensorAssert.Close(delta, expected, 1e-6, 1e-5, $"{t.Component}.{t.Path}");
            Assert.True(delta.Abs().Max().Item() > 1e-3, $"{t.Component}.{t.Path} did not change");
            output.WriteLine($"{t.Component}.{t.Path}: max |ΔW − scale·(alpha/rank)·up·down| {error:E2}");
        }
    }

    [Fact]
    public void AKohyaLoraChangesTheUNetAndBothTextEncodersByExactlyItsUpdateAndRestoresBitForBit()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = Load();
        using var g = new Generator(7);
        var targets = Targets(pipe, g, alphas: true);
        var path = Save("xl_kohya.safetensors", Kohya(targets));
        var before = Snapshot(targets);
        var file = pipe.Loras.Load(path);
        Assert.Equal(targets.Count, file.Modules.Count);
        Assert.Equal(["text_encoder", "text_encoder_2", "unet"], file.Modules.Select(m => m.Component).Distinct().Order(StringComparer.Ordinal));
        Assert.Empty(pipe.Loras.Apply([new LoraSelection(file, 0.7)], strict: true));
        AssertMerged(targets, before, 0.7);
        pipe.Loras.Restore();
        foreach (var t in targets) Assert.True(t.Weight.Equal(before[t.Weight]), $"{t.Component}.{t.Path} restored");

        var request = new GenerationRequest { Prompt = "a horse", Steps = 2, GuidanceScale = 5, Width = 64, Height = 64, Seed = 3 };
        using var plain = pipe.TextToImage(request);
        using var withLora = pipe.TextToImage(request with { Loras = [new LoraRequest(path, 0.7)] });
        using var again = pipe.TextToImage(request);
        var difference = (withLora.Pixels - plain.Pixels).Abs().Max().Item();
        output.WriteLine($"image max |difference| with the LoRA: {difference:E2}");
        Assert.True(difference > 1e-3, $"the LoRA changed the image by only {difference}");
        Assert.True(again.Pixels.Equal(plain.Pixels), "a request without LoRAs gives the model's own image again");
        foreach (var t in targets) Assert.True(t.Weight.Equal(before[t.Weight]), $"{t.Component}.{t.Path} restored after the request");
    }

    [Fact]
    public void PeftKeysReachTheSecondTextEncoder()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = Load();
        using var g = new Generator(11);
        var targets = Targets(pipe, g, alphas: false);
        var before = Snapshot(targets);
        var file = pipe.Loras.Load(Save("xl_peft.safetensors", Peft(targets)));
        Assert.Equal(2, file.Modules.Count(m => m.Component == "text_encoder_2"));
        Assert.Empty(pipe.Loras.Apply([new LoraSelection(file, 1.0)], strict: true));
        AssertMerged(targets, before, 1.0);
        pipe.Loras.Restore();
        foreach (var t in targets) Assert.True(t.Weight.Equal(before[t.Weight]), $"{t.Component}.{t.Path} restored");
    }

    [Fact]
    public void ARefinerTakesTheSecondEncodersLoraKeysAndEmbeddingVectorsOnly()
    {
        using var scope = DisposeScope.Enter();
        using var dir = new TinyXlFolder();
        dir.MakeRefiner();
        using var refiner = StableDiffusionPipeline.FromPretrained(dir.Path);
        using var g = new Generator(13);
        const string path = "text_model.encoder.layers.0.self_attn.k_proj";
        var weight = refiner.TextEncoder.NamedModules().Select(m => (Path: m.Item1, Module: m.Item2)).Single(m => m.Path == path).Module is Linear l ? l.Weight : null!;
        var target = new Target("text_encoder_2", path, weight, Tensors.Randn([2, weight.Size(1)], g), Tensors.Randn([weight.Size(0), 2], g), 1.0);
        var first = target with { Component = "text_encoder", Down = Tensors.Randn([2, 32], g), Up = Tensors.Randn([32, 2], g) };
        var before = Snapshot([target]);
        var file = refiner.Loras.Load(Save("refiner.safetensors", Kohya([target, first])));
        var warning = Assert.Single(refiner.Loras.Apply([new LoraSelection(file, 0.5)]));
        Assert.Contains("1 key maps to no layer of this model and is ignored: lora_te1_text_model_encoder_layers_0_self_attn_k_proj", warning);
        AssertMerged([target], before, 0.5);

        var clipG = Tensors.Randn([1, weight.Size(1)], g);
        var embedding = Save("xlstyle.safetensors", [KeyValuePair.Create("clip_l", Tensors.Zeros([1, 32])), KeyValuePair.Create("clip_g", clipG)]);
        var rows = refiner.TextEncoder.TextModel.Embeddings.TokenEmbedding.Weight.Size(0);
        refiner.Embeddings.Load(embedding);
        Assert.Equal(rows, refiner.Tokenizer.TokenToId("xlstyle"));
        Assert.True(refiner.TextEncoder.TextModel.Embeddings.TokenEmbedding.Weight.Narrow(0, rows, 1).Equal(clipG), "the refiner's new row is clip_g");
    }

    [Fact]
    public void AnSd1LoraIsRefusedInOneLineBeforeAnyWeightChanges()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = Load();
        var before = State(pipe).ToDictionary(p => p.Key, p => p.Value.Clone());
        var e = Assert.Throws<InvalidDataException>(() => pipe.Loras.Apply([new LoraSelection(pipe.Loras.Load(LoraTests.Kohya))]));
        output.WriteLine(e.Message);
        Assert.Contains("lora_unet_down_blocks_0_attentions_0_proj_in changes unet block down_blocks_0_attentions_0, which this model does not have: the LoRA was made for another architecture", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(pipe.Loras.Active);
        foreach (var (name, tensor) in State(pipe)) Assert.True(before[name].Equal(tensor), name);
    }

    private sealed class ReferenceEqualityComparer<T> : IEqualityComparer<T> where T : class
    {
        public bool Equals(T? x, T? y) => ReferenceEquals(x, y);
        public int GetHashCode(T obj) => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj);
    }

    private static IEnumerable<KeyValuePair<string, Tensor>> State(StableDiffusionPipeline pipe) =>
        pipe.Unet.StateDict().Select(p => KeyValuePair.Create("unet." + p.Key, p.Value))
            .Concat(pipe.TextEncoder.StateDict().Select(p => KeyValuePair.Create("text_encoder." + p.Key, p.Value)));
}
