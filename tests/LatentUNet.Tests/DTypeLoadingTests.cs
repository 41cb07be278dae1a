using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>
/// Issue 19: FromPretrained with a dtype converts the model first and copies the file's tensors one by one into it,
/// and the result is exactly what loading in float32 and converting gives.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class DTypeLoadingTests
{
    [Theory]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float16)]
    public void LoadingStraightIntoADTypeEqualsLoadingFloat32AndConverting(DType dtype)
    {
        var live = LiveTensorCount.Settled();
        var dir = SharedData.Fixture("latentunet/sd_tiny/unet");
        using (var direct = UNet2DConditionModel.FromPretrained(dir, dtype: dtype))
        using (var converted = UNet2DConditionModel.FromPretrained(dir).To(dtype))
        {
            var expected = converted.StateDict();
            var actual = direct.StateDict();
            Assert.Equal(expected.Keys, actual.Keys);
            foreach (var (name, tensor) in expected)
            {
                Assert.Equal(tensor.DType, actual[name].DType);
                Assert.Equal(tensor.Shape, actual[name].Shape);
                Assert.True(TensorAssert.MaxAbsDifference(tensor, actual[name]) == 0, $"{name} differs");
            }
            Assert.False(direct.IsTraining);
        }
        Assert.Equal(live, Tensor.LiveCount);
    }
}
