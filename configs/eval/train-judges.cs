#!/usr/bin/env -S dotnet run
// Trains the judges of models/judges from scratch (what `ldm train judges` runs):
//     dotnet run configs/eval/train-judges.cs [-- OUTPUT_ROOT [all|classifier|judge]]
// See README.md beside this file.
#:project ../../src/Training/Training.csproj
#:property PublishAot=false
using LatentDiffusion.Training.Evaluation;

var root = args.Length > 0 ? args[0] : Path.Combine("models", "judges");
var which = args.Length > 1 ? args[1] : "all";
if (which is not ("all" or "classifier" or "judge"))
{
    Console.Error.WriteLine($"unknown judge '{which}': use all, classifier or judge");
    return 2;
}
var last = DateTime.MinValue;
var progress = new Log(s =>
{
    if (s.Step != s.TotalSteps && DateTime.UtcNow - last < TimeSpan.FromSeconds(15)) return;
    last = DateTime.UtcNow;
    Console.WriteLine($"step {s.Step}/{s.TotalSteps} epoch {s.Epoch + 1} loss {s.Loss:F4} lr {s.LearningRate:E2} elapsed {s.Elapsed:hh\\:mm\\:ss}");
});
var reports = new List<JudgeReport>();
if (which is "all" or "classifier")
    reports.Add(JudgeTraining.TrainFashionClassifier(Path.Combine(root, Judge.FashionClassifierName), progress: progress));
if (which is "all" or "judge")
    reports.Add(JudgeTraining.TrainFashionColoursJudge(Path.Combine(root, Judge.FashionColoursJudgeName), progress: progress));
foreach (var report in reports)
{
    Console.WriteLine($"{report.Model}: class accuracy {report.ClassAccuracy:P2}" +
        (report.ColourAccuracy is { } c ? $", colour accuracy {c:P2}" : "") +
        $" on {report.TestImages} test images; trained in {report.Training.Seconds:F0} s ({report.Training.CpuSeconds:F0} s CPU) on {report.Training.Machine}");
}
return 0;

sealed class Log(Action<ClassifierTrainingProgress> write) : IProgress<ClassifierTrainingProgress>
{
    public void Report(ClassifierTrainingProgress value) => write(value);
}
