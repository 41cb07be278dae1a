using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm inpaint</c> and <c>ldm outpaint</c> with the embedded model (4-channel U-Net, VAE factor 4) at 32×32.</summary>
public sealed class InpaintCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-inpaint-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    private string Image(string name, int width, int height, Func<int, int, Rgb> colour)
    {
        var image = RgbImage.Filled(width, height, Rgb.Black);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) image.SetPixel(x, y, colour(x, y));
        image.SavePng(Out(name));
        return Out(name);
    }

    private string Photo() => Image("in.png", 32, 32, (x, y) => new Rgb((byte)(8 * x), (byte)(8 * y), 90));

    private string Mask(int size = 32) => Image($"mask{size}.png", size, size, (x, y) => x >= size / 4 && x < 3 * size / 4 && y >= size / 4 && y < 3 * size / 4 ? Rgb.White : Rgb.Black);

    [Fact]
    public void InpaintKeepsTheUnmaskedAreaAndWritesA1111sInpaintingParameters()
    {
        var r = CliRunner.Run("inpaint", "a red shirt", "--init", Photo(), "--mask", Mask(), "--steps", "3", "--seed", "7", "--mask-blur", "1",
            "--fill", "latent-noise", "--out", Out("a.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Path.GetFullPath(Out("a.png")), r.Out.Trim());
        var result = RgbImage.Load(Out("a.png"));
        var photo = RgbImage.Load(Out("in.png"));
        Assert.Equal((32, 32), (result.Width, result.Height));
        Assert.Equal(photo.GetPixel(1, 1), result.GetPixel(1, 1)); // far from the blurred mask: the original pixel
        var text = GenerationParameters.FromPng(Out("a.png"))!.Format();
        Assert.Contains("Denoising strength: 0.75, Mask blur: 1, Masked content: latent noise", text);

        var again = CliRunner.Run("inpaint", "a red shirt", "--init", Photo(), "--mask", Mask(), "--steps", "3", "--seed", "7", "--mask-blur", "1",
            "--fill", "latent-noise", "--out", Out("b.png"));
        Assert.Equal(0, again.ExitCode);
        Assert.Equal(result.Pixels, RgbImage.Load(Out("b.png")).Pixels);
    }

    [Fact]
    public void OnlyMaskedPastesTheCropBackAndRecordsTheArea()
    {
        var r = CliRunner.Run("inpaint", "a red shirt", "--init", Photo(), "--mask", Mask(), "--steps", "2", "--seed", "1", "--mask-blur", "0",
            "--only-masked", "--padding", "4", "--width", "32", "--height", "32", "--out", Out("crop.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var text = GenerationParameters.FromPng(Out("crop.png"))!.Format();
        Assert.Contains("Mask blur: 0, Inpaint area: Only masked, Masked area padding: 4", text);
        var photo = RgbImage.Load(Out("in.png"));
        var result = RgbImage.Load(Out("crop.png"));
        Assert.Equal(photo.GetPixel(0, 31), result.GetPixel(0, 31));
    }

    [Fact]
    public void AMaskOfAnotherSizeIsResizedWithANote()
    {
        var r = CliRunner.Run("inpaint", "x", "--init", Photo(), "--mask", Mask(16), "--steps", "2", "--seed", "1", "--out", Out("note.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("note: the mask is 16x16 and the image 32x32: the mask is resized to the image", r.Err);
    }

    [Fact]
    public void BadInputIsOneLine()
    {
        var black = Image("black.png", 32, 32, (_, _) => Rgb.Black);
        var allBlack = CliRunner.Run("inpaint", "x", "--init", Photo(), "--mask", black, "--out", Out("x.png"));
        Assert.Equal(1, allBlack.ExitCode);
        Assert.Contains("the mask is all black: nothing to inpaint", Assert.Single(allBlack.ErrLines));

        File.WriteAllText(Out("broken.png"), "not an image");
        var unreadable = CliRunner.Run("inpaint", "x", "--init", Photo(), "--mask", Out("broken.png"), "--out", Out("y.png"));
        Assert.Equal(1, unreadable.ExitCode);
        Assert.Contains("broken.png", Assert.Single(unreadable.ErrLines));

        CliRunner.Run("inpaint", "x", "--init", Photo(), "--mask", Mask(), "--fill", "blur").AssertUsageError("unknown masked content 'blur'");
        CliRunner.Run("outpaint", "x", "--init", Photo(), "--extend", "up=5").AssertUsageError("'up=5' is not SIDE=PIXELS");
        CliRunner.Run("outpaint", "x", "--init", Photo(), "--extend", "left=0").AssertUsageError("give at least one side");
        Assert.False(File.Exists(Out("x.png")) || File.Exists(Out("y.png")));
    }

    [Fact]
    public void OutpaintExtendsTheCanvasKeepsTheImageAndPaintsTheNewArea()
    {
        var r = CliRunner.Run("outpaint", "a coat", "--init", Photo(), "--extend", "left=8,bottom=4", "--steps", "2", "--seed", "3", "--out", Out("wide.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var result = RgbImage.Load(Out("wide.png"));
        // left 8 and bottom 4 → 40 × 36, rounded up to multiples of 8 by extending the bottom: 40 × 40
        Assert.Equal((40, 40), (result.Width, result.Height));
        var photo = RgbImage.Load(Out("in.png"));
        Assert.Equal(photo.GetPixel(31, 0), result.GetPixel(39, 0)); // far from the seam: the original, shifted right by 8
        var parameters = GenerationParameters.FromPng(Out("wide.png"))!;
        Assert.Equal(1.0, parameters.Strength);
        Assert.Contains("Mask blur: 4", parameters.Format());
    }

    [Fact]
    public void ANineChannelModelInpaintsAndRefusesGenerateInOneLine()
    {
        var model = TinyStableDiffusionFolder.AssembleInpainting(Out("inpainting"));
        var photo = Image("in64.png", 64, 64, (x, y) => new Rgb((byte)(4 * x), (byte)(4 * y), 90));
        var mask = Image("mask64.png", 64, 64, (x, y) => x is >= 16 and < 48 && y is >= 16 and < 48 ? Rgb.White : Rgb.Black);
        var generate = CliRunner.Run("generate", "x", "--model", model, "--steps", "1", "--out", Out("g.png"));
        Assert.Equal(1, generate.ExitCode);
        Assert.Contains("is an inpainting model (9 input channels): it needs an init image and a mask", Assert.Single(generate.ErrLines));
        Assert.False(File.Exists(Out("g.png")));

        var r = CliRunner.Run("inpaint", "x", "--model", model, "--init", photo, "--mask", mask, "--steps", "2", "--seed", "1", "--out", Out("i.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("Steps: 2, Sampler: DDIM", GenerationParameters.FromPng(Out("i.png"))!.Format());
    }
}
