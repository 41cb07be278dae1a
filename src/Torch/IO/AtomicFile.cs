namespace LatentDiffusion.Torch;

/// <summary>
/// Writes a file so that readers see either the old content or the complete new one, never a half-written file:
/// the content goes to a hidden temporary file beside the destination, which is then renamed over it. Every
/// command that writes a file goes through here, so the rules below hold for all of them:
/// a symbolic link is written through (its final target is replaced and the link kept), and a destination that
/// exists but is not a regular file (a device such as /dev/full, a FIFO, a socket, a directory) is refused,
/// since renaming over it would silently replace a system file with a regular one. Errors name the path the
/// caller gave, never the temporary file.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var target = ResolveDestination(path);
        var directory = Path.GetDirectoryName(target)!;
        var temporary = Path.Combine(directory, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(directory);
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(temporary); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            if (e is IOException or UnauthorizedAccessException) throw CannotWrite(path, temporary, target, e);
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>
    /// Opens a log for appending (not atomic: each line is appended as it comes), under the same rules
    /// about links, devices and FIFOs as <see cref="Write"/>.
    /// </summary>
    public static FileStream OpenAppend(string path)
    {
        var target = ResolveDestination(path);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            return new FileStream(target, FileMode.Append, FileAccess.Write, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw CannotWrite(path, target, target, e);
        }
    }

    public static void AppendAllText(string path, string text)
    {
        using var stream = OpenAppend(path);
        using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false));
        writer.Write(text);
    }

    /// <summary>
    /// The file that writing <paramref name="path"/> replaces: the final target of a chain of symbolic links
    /// (which may not exist yet), or the path itself. Throws an <see cref="IOException"/> naming
    /// <paramref name="path"/> when that exists and is not a regular file.
    /// </summary>
    public static string ResolveDestination(string path)
    {
        var full = Path.GetFullPath(path);
        var target = full;
        try
        {
            if (FileKinds.Of(full) == FileKind.SymbolicLink)
                target = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException e) // a loop of links, or one too deep to follow
        {
            throw new IOException($"{path}: cannot follow the symbolic link ({e.Message})", e);
        }
        var kind = FileKinds.Of(target);
        if (kind is not (FileKind.Missing or FileKind.Regular))
        {
            var via = target == full ? "" : $" (the symbolic link points to {target})";
            throw new IOException($"{path}: is {FileKinds.Describe(kind)}{via}; refusing to replace it with a regular file");
        }
        return target;
    }

    private static IOException CannotWrite(string path, string temporary, string target, Exception e)
    {
        // .NET names the file it was working on, which is our hidden temporary; the user knows only their path.
        var reason = e.Message.Replace(temporary, path, StringComparison.Ordinal).Replace(target, path, StringComparison.Ordinal);
        return new IOException($"{path}: cannot be written ({reason})", e);
    }
}
