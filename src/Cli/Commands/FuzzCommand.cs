using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Cli.Fuzz;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm fuzz</c>: the long version of the test suite's seeded mutation cases, with a summary and each bug's reproduction.</summary>
internal static class FuzzCommand
{
    public static Command Create(CliContext context)
    {
        var cases = new Option<int>("--cases") { Description = "Cases in all, shared evenly among the families", DefaultValueFactory = _ => 120 }.AtLeast(1);
        var seed = new Option<ulong>("--seed") { Description = "Seed: the same seed gives the same cases", DefaultValueFactory = _ => 1 };
        var family = new Option<string>("--family") { Description = $"{string.Join(", ", FuzzFamilies.All.Select(FuzzFamilies.Name))} or all", DefaultValueFactory = _ => "all" }
            .OneOf([.. FuzzFamilies.All.Select(FuzzFamilies.Name), "all"]);
        var single = new Option<int?>("--case") { Description = "Run only this case index (a bug's reproduction)" };
        single.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 0) r.AddError("--case must be ≥ 0"); });
        var json = new Option<bool>("--json") { Description = "Print the report as JSON" };
        var command = new Command("fuzz", "Seeded mutations of model files, images and option values: every case must end in a result or one clear error")
        {
            cases, seed, family, single, json,
        };
        command.SetAction((parsed, cancellation) =>
        {
            var name = parsed.GetValue(family)!;
            var families = name.Equals("all", StringComparison.OrdinalIgnoreCase) ? FuzzFamilies.All : [FuzzFamilies.Parse(name)];
            var perFamily = (parsed.GetValue(cases) + families.Count - 1) / families.Count;
            var first = parsed.GetValue(single) ?? 0;
            if (parsed.GetValue(single) is not null) perFamily = 1;
            var report = FuzzRunner.Run(families, perFamily, parsed.GetValue(seed), FuzzSources.Embedded(), FuzzScope.All, first,
                onCase: c => { if (c.Outcome == FuzzOutcome.Bug) context.Err.WriteLine($"bug: {Describe(c)}"); }, cancellation: cancellation);
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(ToJson(report)));
            else Print(context.Out, report);
            return Task.FromResult(report.Bugs.Count == 0 ? 0 : ErrorReporter.Failure);
        });
        return command;
    }

    private static string Describe(FuzzCaseResult c) => $"{c.Reproduction}: {c.Mutation}: {c.Message}";

    private static void Print(TextWriter output, FuzzReport report)
    {
        output.WriteLine($"{"family",-12} {"cases",6} {"ok",6} {"refused",8} {"bug",5}");
        foreach (var c in report.Counts) output.WriteLine($"{FuzzFamilies.Name(c.Family),-12} {c.Cases,6} {c.Ok,6} {c.Refused,8} {c.Bugs,5}");
        var all = report.Cases;
        output.WriteLine($"{"all",-12} {all.Count,6} {all.Count(c => c.Outcome == FuzzOutcome.Ok),6} {all.Count(c => c.Outcome == FuzzOutcome.Refused),8} {report.Bugs.Count,5}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{report.Elapsed.TotalSeconds:F0} s"));
        foreach (var bug in report.Bugs) output.WriteLine($"bug: {Describe(bug)}");
    }

    private static object ToJson(FuzzReport report) => new
    {
        Cases = report.Cases.Count,
        Seconds = Math.Round(report.Elapsed.TotalSeconds, 1),
        Families = report.Counts.Select(c => new { Family = FuzzFamilies.Name(c.Family), c.Cases, c.Ok, c.Refused, c.Bugs }),
        Bugs = report.Bugs.Select(b => new { Family = FuzzFamilies.Name(b.Family), b.Seed, Case = b.Index, b.Mutation, b.Message, b.Reproduction }),
    };
}
