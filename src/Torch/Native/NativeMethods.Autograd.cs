using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/autograd.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_backward")] internal static partial int Backward(IntPtr t, IntPtr grad, int retainGraph);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_grad")] internal static partial int Grad(IntPtr t, IntPtr* grad);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_autograd_grad")] internal static partial int AutogradGrad(IntPtr* outputs, IntPtr* gradOutputs, int nOutputs, IntPtr* inputs, int nInputs, int retainGraph, int createGraph, int allowUnused, IntPtr* result);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_grad")] internal static partial int SetGrad(IntPtr t, IntPtr grad);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_zero_grad")] internal static partial int ZeroGrad(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_is_grad_enabled")] internal static partial int IsGradEnabled();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_grad_enabled")] internal static partial int SetGradEnabled(int enabled);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_inference_mode_enter")] internal static partial IntPtr InferenceModeEnter();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_inference_mode_exit")] internal static partial void InferenceModeExit(IntPtr guard);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_adamw_step")] internal static partial int AdamWStep(IntPtr* parameters, IntPtr* expAvg, IntPtr* expAvgSq, int n, double lr, double beta1, double beta2, double eps, double weightDecay, long step, int decoupled);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_sgd_step")] internal static partial int SgdStep(IntPtr* parameters, IntPtr* momentumBuffers, int n, double lr, double momentum, double dampening, double weightDecay, int nesterov);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_clip_grad_norm")] internal static partial int ClipGradNorm(IntPtr* parameters, int n, double maxNorm, double normType, double* total);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_ema_update")] internal static partial int EmaUpdate(IntPtr* ema, IntPtr* parameters, int n, double decay);
}
