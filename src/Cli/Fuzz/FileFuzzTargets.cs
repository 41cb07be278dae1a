using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>Single files read directly: a safetensors file through <see cref="SafeTensorsFile"/>, an image through <see cref="ImageDecoder"/>.</summary>
internal static class FileFuzzTargets
{
    /// <summary>The decoder's pixel limit in the fuzz: a mutated header that claims a huge image is refused quickly.</summary>
    public const long MaxPixels = 1_000_000;

    public static (string Mutation, FuzzOutcome Outcome, string Message) SafeTensors(FuzzRandom random, string work)
    {
        var mutated = SafeTensorsMutator.Mutate(SafeTensorsMutator.Sample(), random);
        var path = Path.Combine(work, "fuzz.safetensors");
        File.WriteAllBytes(path, mutated.Data);
        try
        {
            using var file = SafeTensorsFile.Open(path);
            var tensors = file.LoadAll();
            var count = tensors.Count;
            foreach (var t in tensors.Values) t.Dispose();
            return (mutated.Description, FuzzOutcome.Ok, $"{count} tensors");
        }
        catch (Exception e)
        {
            var (outcome, message) = FuzzVerdict.OfException(e, Path.GetFileName(path));
            return (mutated.Description, outcome, message);
        }
    }

    public static (string Mutation, FuzzOutcome Outcome, string Message) Image(FuzzRandom random, string work)
    {
        var (name, data) = random.Pick(ImageSeeds.Images);
        var mutated = ImageMutator.Mutate(data, random);
        var path = Path.Combine(work, name);
        File.WriteAllBytes(path, mutated.Data);
        var mutation = $"{name}: {mutated.Description}";
        try
        {
            var image = ImageDecoder.Load(path, maxPixels: MaxPixels);
            return image.Width > 0 && image.Height > 0 && image.Pixels.Length == image.Width * image.Height * 3
                ? (mutation, FuzzOutcome.Ok, image.ToString())
                : (mutation, FuzzOutcome.Bug, $"inconsistent image {image} with {image.Pixels.Length} bytes");
        }
        catch (Exception e)
        {
            var (outcome, message) = FuzzVerdict.OfException(e, name);
            return (mutation, outcome, message);
        }
    }
}
