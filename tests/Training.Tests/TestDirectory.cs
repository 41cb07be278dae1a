namespace LatentDiffusion.Training.Tests;

internal static class TestDirectory
{
    public static string Create()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ldm-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void Delete(string dir)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }
}
