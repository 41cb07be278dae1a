namespace LatentDiffusion.Training.Toy;

/// <summary>A cloud of 2-D points at diffusion step <paramref name="Step"/>; <paramref name="Coordinates"/> holds x₀, y₀, x₁, y₁, ….</summary>
public sealed record PointFrame(int Step, float[] Coordinates)
{
    public int Count => Coordinates.Length / 2;
}
