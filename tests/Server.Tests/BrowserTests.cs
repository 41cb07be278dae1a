using LatentDiffusion.Tests.Common;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>Runs only where Debian's chromium and chromium-driver are installed (.ci/install-packages --tests, which .ci/run calls, installs them).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Browser = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Browser) || !File.Exists(Driver))
            Skip = $"headless Chromium is absent ({Browser}, {Driver}): apt-get install chromium chromium-driver, or run .ci/install-packages --tests";
    }
}

/// <summary>The web page in headless Chromium: type a prompt, generate with the embedded model, watch progress, read the parameters.</summary>
public sealed class BrowserTests
{
    [ChromiumFact]
    public async Task The_page_generates_with_the_embedded_model_shows_progress_and_the_image_with_its_parameters()
    {
        var loras = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "pipeline", "lora");
        await using var s = await TestServer.StartAsync(new ServeOptions { ModelPath = TestServer.EmbeddedModel, Port = 0, LoraDirectory = loras });
        using var driver = StartChromium();
        var wait = new WebDriverWait(driver, TimeSpan.FromSeconds(30));
        driver.Navigate().GoToUrl(s.Server.Url);
        wait.Until(d => d.FindElements(By.CssSelector("#sampler option")).Count > 0 && d.FindElement(By.Id("status")).Text == "ready");
        Assert.Equal("fashion-colours", driver.FindElement(By.Id("model")).GetDomProperty("value"));

        // the LoRA picker inserts A1111's tag (the tiny LoRA is for another model, so the tag is taken out again)
        driver.FindElement(By.CssSelector("#networks summary")).Click();
        Choose(driver, "lora", "sd_tiny_lora_kohya");
        Fill(driver, "lora-weight", "0.7");
        driver.FindElement(By.Id("add-lora")).Click();
        Assert.Equal("<lora:sd_tiny_lora_kohya:0.7>", driver.FindElement(By.Id("prompt")).GetDomProperty("value"));
        Assert.Contains("(none: start with --controlnet-dir)", driver.FindElements(By.CssSelector("#cn-model option")).Select(o => o.GetDomProperty("textContent")));
        driver.FindElement(By.Id("prompt")).Clear();
        driver.FindElement(By.Id("prompt")).SendKeys("a red shirt");
        // the model's own size (32×32, width and height left empty); enough steps to be seen running
        Fill(driver, "steps", "150");
        Fill(driver, "seed", "1234");
        Fill(driver, "batch", "4");
        Choose(driver, "sampler", "DPM++ 2M");
        Choose(driver, "scheduler", "Karras");
        driver.FindElement(By.Id("generate")).Click();

        // live progress: a step seen while running, then the images in the gallery with their parameters
        wait.Until(d => int.Parse(d.FindElement(By.TagName("body")).GetDomAttribute("data-max-step") ?? "0") > 0);
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 4);
        var parameters = driver.FindElements(By.CssSelector("#gallery .item .params")).Select(p => p.Text).ToList();
        Assert.Contains("a red shirt\nSteps: 150, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1235, Size: 32x32, Model: fashion-colours", parameters);
        Assert.StartsWith("data:image/png;base64,", driver.FindElement(By.Id("preview")).GetDomProperty("src"));
        Assert.StartsWith("done in", driver.FindElement(By.Id("status")).Text);

        // re-use the seed; send an image to img2img and generate from it
        Fill(driver, "seed", "-1");
        driver.FindElement(By.Id("reuse-seed")).Click();
        Assert.Equal("1234", driver.FindElement(By.Id("seed")).GetDomProperty("value"));
        driver.FindElements(By.CssSelector("#gallery .item .to-img2img"))[0].Click();
        Assert.True(driver.FindElement(By.Id("img2img-fields")).Displayed);
        Fill(driver, "batch", "1");
        Fill(driver, "steps", "30");
        Fill(driver, "denoise", "0.5");
        driver.FindElement(By.Id("generate")).Click();
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 5);
        Assert.Contains("Denoising strength: 0.5", driver.FindElement(By.CssSelector("#gallery .item .params")).Text);

        // inpainting: a mask drawn on the init image (a stroke on the canvas), then an uploaded mask image (right half white)
        driver.FindElement(By.CssSelector("#inpaint summary")).Click();
        var canvas = driver.FindElement(By.Id("mask-canvas"));
        new OpenQA.Selenium.Interactions.Actions(driver).MoveToElement(canvas).ClickAndHold().MoveByOffset(30, 20).Release().Perform();
        Assert.Equal("mask drawn: inpainting", driver.FindElement(By.Id("mask-state")).Text);
        driver.FindElement(By.Id("generate")).Click();
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 6);
        Assert.Contains("Mask blur: 4", driver.FindElement(By.CssSelector("#gallery .item .params")).Text);
        var mask = new Pipeline.Imaging.RgbImage(32, 32, [.. Enumerable.Range(0, 32 * 32 * 3).Select(i => (byte)(i / 3 % 32 >= 16 ? 255 : 0))]);
        var maskFile = Path.Combine(Path.GetTempPath(), $"ldm-serve-mask-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(maskFile, mask.EncodePng());
        try
        {
            driver.FindElement(By.Id("mask-file")).SendKeys(maskFile);
            wait.Until(d => d.FindElement(By.Id("mask-state")).Text == "mask uploaded: inpainting");
            Choose(driver, "fill", "latent noise");
            driver.FindElement(By.Id("generate")).Click();
            wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 7);
            Assert.Contains("Masked content: latent noise", driver.FindElement(By.CssSelector("#gallery .item .params")).Text);
        }
        finally
        {
            File.Delete(maskFile);
        }

        // PNG info of an image file given to the page
        var href = driver.FindElement(By.CssSelector("#gallery .item a.download")).GetDomProperty("href")!;
        var file = Path.Combine(Path.GetTempPath(), $"ldm-serve-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, Convert.FromBase64String(href[(href.IndexOf(',') + 1)..]));
        try
        {
            driver.FindElement(By.Id("png-file")).SendKeys(file);
            wait.Until(d => d.FindElement(By.Id("png-info")).Text.Contains("Masked content: latent noise"));
        }
        finally
        {
            File.Delete(file);
        }

        ((IJavaScriptExecutor)driver).ExecuteScript("window.scrollTo(0, 0)");
        var screenshot = ScreenshotPath();
        ((ITakesScreenshot)driver).GetScreenshot().SaveAsFile(screenshot + ".tmp");
        File.Move(screenshot + ".tmp", screenshot, overwrite: true);
        Assert.True(new FileInfo(screenshot).Length > 10_000);

        // the gallery is the server's: a reloaded page shows the same images
        driver.Navigate().Refresh();
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 7);
        Assert.Contains("Masked content: latent noise", driver.FindElement(By.CssSelector("#gallery .item .params")).Text);

        // Interrupt (A1111's, not a cancel): the run ends after its running step and the request answers with its image
        Assert.False(driver.FindElement(By.Id("interrupt")).Displayed); // shown only while generating
        Fill(driver, "steps", "1000");
        Fill(driver, "batch", "1");
        driver.FindElement(By.Id("generate")).Click();
        new WebDriverWait(driver, TimeSpan.FromSeconds(30)) { PollingInterval = TimeSpan.FromMilliseconds(20) }
            .Until(d => int.Parse(d.FindElement(By.TagName("body")).GetDomAttribute("data-max-step") ?? "0") > 0);
        var interrupt = driver.FindElement(By.Id("interrupt"));
        Assert.Equal("Interrupt", interrupt.Text);
        interrupt.Click();
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count == 8);
        Assert.StartsWith("done in", driver.FindElement(By.Id("status")).Text);
        Assert.Contains("Steps: 1000,", driver.FindElement(By.CssSelector("#gallery .item .params")).Text);
        var stepsSeen = int.Parse(driver.FindElement(By.TagName("body")).GetDomAttribute("data-max-step")!);
        Assert.True(stepsSeen < 900, $"the run went on to step {stepsSeen} of 1000 after the interrupt");
    }

    /// <summary>
    /// README's docs/serve.png when it is missing or LDM_UPDATE_SCREENSHOT=1; otherwise beside the test assembly, so that
    /// a test run does not change the repository (the page shows timings, so no two screenshots are the same).
    /// </summary>
    private static string ScreenshotPath()
    {
        var readme = Path.Combine(SharedData.RepositoryRoot, "docs", "serve.png");
        return !File.Exists(readme) || Environment.GetEnvironmentVariable("LDM_UPDATE_SCREENSHOT") == "1"
            ? readme
            : Path.Combine(AppContext.BaseDirectory, "serve.png");
    }

    private static void Fill(IWebDriver driver, string id, string value)
    {
        var input = driver.FindElement(By.Id(id));
        input.Clear();
        input.SendKeys(value);
    }

    private static void Choose(IWebDriver driver, string id, string option) =>
        driver.FindElements(By.CssSelector($"#{id} option")).Single(o => o.Text == option).Click();

    private static ChromeDriver StartChromium()
    {
        var options = new ChromeOptions { BinaryLocation = ChromiumFactAttribute.Browser };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromiumFactAttribute.Driver)!, Path.GetFileName(ChromiumFactAttribute.Driver));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }
}
