namespace LatentDiffusion.Training.Tests;

internal static class TestDirectory
{
    public static string Create()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ldm-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Deletes a test's output, unless LDM_KEEP_TEST_OUTPUT is set (to look at the pictures).</summary>
    public static void Delete(string dir)
    {
        if (Environment.GetEnvironmentVariable("LDM_KEEP_TEST_OUTPUT") is { Length: > 0 })
        {
            Console.Error.WriteLine($"kept test output {dir}");
            return;
        }
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }
}
