using System.Runtime.InteropServices;

namespace LatentDiffusion.Pipeline.Imaging;

// Debian's libstb0 (stb_image 2.27). Its failure reason is thread-local, so it belongs to the
// call that just failed on this thread.
internal static unsafe partial class Stb
{
    internal const string Library = "libstb.so.0";

    [LibraryImport(Library, EntryPoint = "stbi_info_from_memory")]
    internal static partial int InfoFromMemory(byte* buffer, int length, int* x, int* y, int* channels);

    [LibraryImport(Library, EntryPoint = "stbi_load_from_memory")]
    internal static partial byte* LoadFromMemory(byte* buffer, int length, int* x, int* y, int* channelsInFile, int desiredChannels);

    [LibraryImport(Library, EntryPoint = "stbi_failure_reason")]
    internal static partial byte* FailureReason();

    [LibraryImport(Library, EntryPoint = "stbi_image_free")]
    internal static partial void ImageFree(void* pixels);

    internal static string LastFailure()
    {
        var reason = FailureReason();
        return reason == null ? "unknown error" : Marshal.PtrToStringUTF8((IntPtr)reason) ?? "unknown error";
    }
}
