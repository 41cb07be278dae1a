using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch;

/// <summary>What a path names on disk, as stat(2) says (without following a final symbolic link).</summary>
internal enum FileKind { Missing, Regular, Directory, SymbolicLink, CharacterDevice, BlockDevice, Fifo, Socket, Other }

internal static partial class FileKinds
{
    /// <summary>The kind of <paramref name="path"/> itself; a symbolic link is reported as one, not followed.</summary>
    public static FileKind Of(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            // No devices or FIFOs among ordinary paths on Windows; FileSystemInfo tells the rest.
            var info = new FileInfo(path);
            if (info.LinkTarget is not null) return FileKind.SymbolicLink;
            return info.Exists ? FileKind.Regular : Directory.Exists(path) ? FileKind.Directory : FileKind.Missing;
        }
        // .NET's own System.Native shim has a stat with a layout fixed across platforms
        // (FileStatus: int Flags, int Mode, …), unlike libc's struct stat. The buffer is oversized on purpose.
        Span<byte> status = stackalloc byte[256];
        if (LStat(path, ref MemoryMarshal.GetReference(status)) != 0) return FileKind.Missing;
        var mode = BitConverter.ToInt32(status[4..8]);
        return (mode & 0xF000) switch
        {
            0x8000 => FileKind.Regular,
            0x4000 => FileKind.Directory,
            0xA000 => FileKind.SymbolicLink,
            0x2000 => FileKind.CharacterDevice,
            0x6000 => FileKind.BlockDevice,
            0x1000 => FileKind.Fifo,
            0xC000 => FileKind.Socket,
            _ => FileKind.Other,
        };
    }

    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Directory => "a directory",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.Socket => "a socket",
        FileKind.Regular => "a regular file",
        FileKind.Missing => "missing",
        _ => "not a regular file",
    };

    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_LStat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LStat(string path, ref byte output);
}
