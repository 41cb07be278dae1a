using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>
/// The fused inference GroupNorm (+ SiLU) kernel (native/src/groupnorm.cpp, issue 19): contiguous f32/bf16 input on a
/// CPU with AVX-512, autograd off. It reads and writes bf16 directly (f32 statistics, rounded to nearest even) and
/// applies <see cref="Functional.GroupNormSilu"/>'s SiLU in the same pass. Elsewhere, or when disabled, GroupNorm is
/// libtorch's (in f32 for bf16) and SiLU a separate in-place pass. The same switch covers the fused inference LayerNorm
/// (native/src/layernorm.cpp: bf16 input, weight and bias read directly, no f32 copies; libtorch's otherwise).
/// <c>LDTORCH_FUSED_NORM=0</c> disables both when the library loads.
/// </summary>
public static class FusedNorm
{
    /// <summary>The environment variable whose value 0 disables the kernel when the library loads.</summary>
    public const string Variable = "LDTORCH_FUSED_NORM";

    /// <summary>
    /// Whether the fused kernel computes the calls it applies to: false where the CPU lacks AVX-512 whatever is set.
    /// Setting false forces the fallback (tests compare the two); setting true enables it where the CPU allows.
    /// </summary>
    public static bool Enabled
    {
        get => NativeMethods.FusedNormSet(-1) == 1;
        set => NativeMethods.FusedNormSet(value ? 1 : 0);
    }
}
