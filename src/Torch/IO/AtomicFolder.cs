namespace LatentDiffusion.Torch;

/// <summary>
/// A folder written completely or not at all: assembled in a hidden staging folder beside the target and renamed into
/// place when <c>write</c> returns; on failure the staging folder is removed and the target is untouched.
/// </summary>
public static class AtomicFolder
{
    /// <summary>Writes <paramref name="directory"/> through <paramref name="write"/> (given the staging path); refuses an existing folder unless <paramref name="overwrite"/>, and any other file there.</summary>
    public static void Write(string directory, bool overwrite, Action<string> write)
    {
        var target = Path.GetFullPath(directory);
        // A file, a device or a dangling link there would only fail at the final rename, after all the work.
        if (!Directory.Exists(target) && (File.Exists(target) || new FileInfo(target).LinkTarget is not null))
            throw new IOException($"{target}: is a file, not a folder (choose a folder path)");
        if (Directory.Exists(target) && !overwrite)
            throw new IOException($"{target}: already exists (choose another folder or remove it)");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(staging);
            write(staging);
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.Move(staging, target);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
    }
}
