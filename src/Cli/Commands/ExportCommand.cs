using System.CommandLine;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Onnx;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Commands;

/// <summary>
/// <c>ldm export onnx MODEL OUTDIR [--opset 17] [--fp16] [--lora FILE[:SCALE]] [--embedding NAME=FILE]</c>: a Stable Diffusion
/// model as an ONNX folder, with LoRAs merged into its weights and embeddings added to its tokenizer and text encoder.
/// </summary>
internal static class ExportCommand
{
    public static Command Create(CliContext context)
    {
        var model = new Argument<string>("model") { Description = "A diffusers model folder or a single-file .safetensors checkpoint" };
        var output = new Argument<string>("outdir") { Description = "The ONNX folder to write (diffusers' OnnxStableDiffusionPipeline layout)" };
        var opset = new Option<int>("--opset") { Description = "ONNX opset: 17 or 18", DefaultValueFactory = _ => 17 };
        var fp16 = new Option<bool>("--fp16") { Description = "Weights and computation in float16 (for GPUs; a force_upcast VAE stays float32)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Single-file checkpoints: a CLIP tokenizer folder or bpe_simple_vocab_16e6.txt.gz" }.IsPath();
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing OUTDIR" };
        var adapters = new AdapterOptions();
        var onnx = new Command("onnx", "Write the model as ONNX graphs emitted from its module tree (no Python): text_encoder, unet, vae_encoder, vae_decoder, with dynamic batch, height and width")
        {
            model, output, opset, fp16, tokenizer, overwrite, adapters.Lora, adapters.StrictLora, adapters.Embedding, adapters.EmbeddingsDir,
        };
        onnx.SetAction(parsed =>
        {
            var options = new OnnxExportOptions { Opset = parsed.GetValue(opset), Fp16 = parsed.GetValue(fp16), Overwrite = parsed.GetValue(overwrite) };
            if (options.Opset is < 17 or > 18) throw new UsageException($"{opset.Name} must be 17 or 18, got {options.Opset}");
            var chosen = adapters.Parse(parsed); // a missing LoRA or embedding file fails before the model loads
            using var pipe = ModelLoader.Load(parsed.GetValue(model)!, "torch", new PipelineOptions { TokenizerPath = parsed.GetValue(tokenizer) });
            MergeAdapters(pipe, chosen, context);
            var target = parsed.GetValue(output)!;
            StableDiffusionOnnxExport.Export(pipe, target, options, new Lines(context.Err));
            context.Out.WriteLine(Path.GetFullPath(target));
            return 0;
        });
        var command = new Command("export", "Export a model to another format");
        command.Subcommands.Add(onnx);
        return command;
    }

    // The graphs are emitted from the weights as they are: LoRAs merged, embeddings' tokens added (the tokenizer is saved grown).
    private static void MergeAdapters(StableDiffusionPipeline pipe, AdapterOptions.Parsed chosen, CliContext context)
    {
        foreach (var (name, path) in chosen.Embeddings) pipe.Embeddings.Load(path, name);
        if (chosen.EmbeddingsDir is not null)
            foreach (var warning in pipe.Embeddings.LoadDirectory(chosen.EmbeddingsDir)) context.Warn(warning);
        if (chosen.Loras.Count == 0) return;
        var selections = chosen.Loras.Select(l => new LoraSelection(pipe.Loras.Load(l.PathOrName), l.Scale, l.TextEncoderScale)).ToList();
        foreach (var warning in pipe.Loras.Apply(selections, chosen.Strict)) context.Warn(warning);
    }

    /// <summary>Each part's name as it starts, on standard error, in order.</summary>
    private sealed class Lines(TextWriter err) : IProgress<string>
    {
        public void Report(string value) => err.WriteLine($"exporting {value}");
    }
}
