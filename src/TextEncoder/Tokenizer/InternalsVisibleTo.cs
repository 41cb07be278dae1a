using System.Runtime.CompilerServices;

// Unit tests of the tokenizer's building blocks (NFC, pre-tokenisation, clean-up).
[assembly: InternalsVisibleTo("LatentDiffusion.TextEncoder.Tests")]
