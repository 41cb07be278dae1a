using LatentDiffusion.Torch;

Console.WriteLine($"libtorch {Torch.LibTorchVersion}, blas {Torch.Blas}, threads {Torch.Threads}");
using var g = new Generator(0);
using var x = Torch.Randn([2, 3], g);
Console.WriteLine(string.Join(", ", x.ToArray<float>()));
