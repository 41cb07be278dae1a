#!/usr/bin/env -S dotnet run
// Trains the two judges of models/judges from scratch (the `ldm train judges` command):
//     dotnet run configs/eval/train-judges.cs [-- OUTPUT_ROOT]
// See README.md beside this file.
#:project ../../src/Training/Training.csproj
#:property PublishAot=false
using LatentDiffusion.Training.Evaluation;

var root = args.Length > 0 ? args[0] : Path.Combine("models", "judges");
var last = DateTime.MinValue;
var progress = new Progress<JudgeTrainingProgress>(p =>
{
    var s = p.Step;
    if (s.Step != s.TotalSteps && DateTime.UtcNow - last < TimeSpan.FromSeconds(15)) return;
    last = DateTime.UtcNow;
    Console.WriteLine($"{p.Judge}: step {s.Step}/{s.TotalSteps} epoch {s.Epoch + 1} loss {s.Loss:F4} lr {s.LearningRate:E2} elapsed {s.Elapsed:hh\\:mm\\:ss}");
});
foreach (var report in JudgeTraining.TrainJudges(root, progress))
{
    Console.WriteLine($"{report.Model}: class accuracy {report.ClassAccuracy:P2}" +
        (report.ColourAccuracy is { } c ? $", colour accuracy {c:P2}" : "") +
        $" on {report.TestImages} test images; trained in {report.Training.Seconds:F0} s ({report.Training.CpuSeconds:F0} s CPU) on {report.Training.Machine}");
}
