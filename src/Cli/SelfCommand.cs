namespace LatentDiffusion.Cli;

/// <summary>Starting this program again as a child process (benchmark comparisons, data-parallel ranks).</summary>
internal static class SelfCommand
{
    /// <summary>How to start this program again: the apphost beside the assembly, else dotnet ldm.dll.</summary>
    public static (string FileName, string[] Prefix) Get()
    {
        var assembly = typeof(CliApp).Assembly.Location;
        var directory = Path.GetDirectoryName(assembly) ?? AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "ldm.exe" : "ldm");
        if (File.Exists(apphost)) return (apphost, []);
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet))
        {
            var current = Environment.ProcessPath;
            dotnet = current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
        }
        return (dotnet, [assembly]);
    }
}
