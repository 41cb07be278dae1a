using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;

namespace LatentDiffusion.Torch.SafeTensors;

/// <summary>
/// A safetensors file opened through a memory map. Only the header is read on open; each tensor is
/// copied out of the map when <see cref="Load"/> asks for it. Every header field is validated.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly MemoryMappedFile map;
    private readonly MemoryMappedViewAccessor view;
    private readonly Dictionary<string, TensorInfo> byName;
    private readonly long dataStart;

    public string FilePath { get; }

    /// <summary>Tensor names in the order their data appears in the file.</summary>
    public IReadOnlyList<string> Keys { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart,
        List<TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        FilePath = path;
        this.map = map;
        this.view = view;
        this.dataStart = dataStart;
        byName = tensors.ToDictionary(t => t.Name);
        Keys = tensors.OrderBy(t => t.Begin).ThenBy(t => t.Name, StringComparer.Ordinal).Select(t => t.Name).ToList();
        Metadata = metadata;
    }

    public static unsafe SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new SafeTensorsException(path, "file not found");
        long length;
        try { length = new FileInfo(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new SafeTensorsException(path, $"cannot be read ({e.Message})");
        }
        if (length < 8) throw new SafeTensorsException(path, $"is {length} bytes, too short for a safetensors header");

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* basePtr = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            try
            {
                basePtr += view.PointerOffset;
                var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(basePtr, 8));
                if (headerLength > SafeTensorsHeader.MaxHeaderLength)
                    throw new SafeTensorsException(path, $"header length {headerLength} is absurd (limit {SafeTensorsHeader.MaxHeaderLength}); not a safetensors file?");
                if (8 + (long)headerLength > length)
                    throw new SafeTensorsException(path, $"header length {headerLength} runs past the end of the {length}-byte file (truncated?)");
                var json = new ReadOnlySpan<byte>(basePtr + 8, (int)headerLength);
                var dataStart = 8 + (long)headerLength;
                var (tensors, metadata) = SafeTensorsHeader.Parse(path, json, length - dataStart);
                return new SafeTensorsFile(path, map, view, dataStart, tensors, metadata);
            }
            finally
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
        catch (Exception e)
        {
            view?.Dispose();
            map?.Dispose();
            if (e is SafeTensorsException) throw;
            if (e is IOException or UnauthorizedAccessException)
                throw new SafeTensorsException(path, $"cannot be read ({e.Message})", e);
            throw;
        }
    }

    public bool Contains(string name) => byName.ContainsKey(name);

    public TensorInfo Info(string name) =>
        byName.TryGetValue(name, out var info) ? info : throw new SafeTensorsException(FilePath, $"has no tensor named '{name}'");

    /// <summary>
    /// Copies one tensor out of the file (onto the CPU unless <paramref name="device"/> says otherwise). The tensor's
    /// bytes are mapped for this call only: the file's pages do not stay in the process's resident memory, so a
    /// model loaded tensor by tensor peaks near its own size, not its size plus the file's (issue 19).
    /// </summary>
    public unsafe Tensor Load(string name, DType? dtype = null, Device? device = null)
    {
        var info = Info(name);
        if (info.ByteLength == 0) return Convert(Tensor.FromBytes([], info.DType, info.Shape));
        using var part = map.CreateViewAccessor(dataStart + info.Begin, info.ByteLength, MemoryMappedFileAccess.Read);
        byte* basePtr = null;
        part.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
        try
        {
            return Convert(Tensor.FromBytes(new ReadOnlySpan<byte>(basePtr + part.PointerOffset, checked((int)info.ByteLength)), info.DType, info.Shape));
        }
        finally
        {
            part.SafeMemoryMappedViewHandle.ReleasePointer();
        }

        Tensor Convert(Tensor t)
        {
            if ((dtype is null || dtype == info.DType) && (device is null || device == Device.CPU)) return t;
            using (t) return t.To(device ?? Device.CPU, dtype ?? info.DType);
        }
    }

    /// <summary>Every tensor, in file order. The caller owns the tensors.</summary>
    public Dictionary<string, Tensor> LoadAll(DType? dtype = null, Device? device = null)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var name in Keys) result[name] = Load(name, dtype, device);
        return result;
    }

    public void Dispose()
    {
        view.Dispose();
        map.Dispose();
    }

    /// <summary>Reads every tensor of <paramref name="path"/>; the caller owns them.</summary>
    public static Dictionary<string, Tensor> LoadFile(string path, DType? dtype = null, Device? device = null)
    {
        using var file = Open(path);
        return file.LoadAll(dtype, device);
    }

    /// <summary>
    /// Writes tensors in the safetensors format, atomically: to a temporary file beside
    /// <paramref name="path"/> that is renamed over it only once complete.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = tensors.ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, tensor) in entries)
        {
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor");
            var bytes = tensor.NumEl * tensor.DType.ElementSize();
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = SafeTensorsHeader.DTypeName(tensor.DType),
                ["shape"] = tensor.Shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        var padded = (json.Length + 7) / 8 * 8;

        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
            stream.Write(prefix);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var (_, tensor) in entries) stream.Write(tensor.ToBytes());
        });
    }
}
