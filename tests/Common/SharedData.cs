using Xunit;

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// Locates the ../shared folder that sits beside the repository (real public data and reference
/// goldens). Tests that need it use <see cref="SharedDataFactAttribute"/> and are reported as
/// skipped, with the reason, where it is absent; the repository passes without it.
/// </summary>
public static class SharedData
{
    public static string? Root { get; } = Locate();

    public static string SkipReason => "../shared (real data beside the repository) is absent; set LDM_SHARED to its path to run this test";

    /// <summary>The absolute path of a file under ../shared, e.g. Path("data/clip-tokenizer/vocab.json").</summary>
    public static string Path(string relative) =>
        System.IO.Path.Combine(Root ?? throw new InvalidOperationException(SkipReason), relative);

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "LatentDiffusion.slnx"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (LatentDiffusion.slnx) above " + AppContext.BaseDirectory);
    }

    private static string? Locate()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("LDM_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment)) return Directory.Exists(fromEnvironment) ? fromEnvironment : null;
        var beside = System.IO.Path.GetFullPath(System.IO.Path.Combine(FindRepositoryRoot(), "..", "shared"));
        return Directory.Exists(System.IO.Path.Combine(beside, "data")) ? beside : null;
    }

    /// <summary>A test fixture copied beside the test assembly (tests/fixtures/...).</summary>
    public static string Fixture(string relative) => System.IO.Path.Combine(AppContext.BaseDirectory, "fixtures", relative);
}

/// <summary>A fact that needs ../shared: skipped with the reason where it is absent.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute()
    {
        if (SharedData.Root is null) Skip = SharedData.SkipReason;
    }
}

/// <summary>A theory that needs ../shared: skipped with the reason where it is absent.</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute()
    {
        if (SharedData.Root is null) Skip = SharedData.SkipReason;
    }
}
