using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("LatentDiffusion.Torch.Tests")]
