using System.Diagnostics;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>The counts of one family.</summary>
public sealed record FuzzFamilyCounts(FuzzFamily Family, int Cases, int Ok, int Refused, int Bugs);

/// <summary>A run's cases and how long it took.</summary>
public sealed record FuzzReport(IReadOnlyList<FuzzCaseResult> Cases, TimeSpan Elapsed)
{
    public IReadOnlyList<FuzzCaseResult> Bugs => Cases.Where(c => c.Outcome == FuzzOutcome.Bug).ToList();

    public IReadOnlyList<FuzzFamilyCounts> Counts => Cases.GroupBy(c => c.Family).OrderBy(g => g.Key)
        .Select(g => new FuzzFamilyCounts(g.Key, g.Count(), g.Count(c => c.Outcome == FuzzOutcome.Ok),
            g.Count(c => c.Outcome == FuzzOutcome.Refused), g.Count(c => c.Outcome == FuzzOutcome.Bug)))
        .ToList();
}

/// <summary>
/// Runs seeded mutation cases. Case i of a family depends only on (family, seed, i), so any case reruns alone
/// (<c>ldm fuzz --family F --seed S --case i</c>). Each case works in its own temporary folder, deleted afterwards.
/// </summary>
public static class FuzzRunner
{
    /// <summary>Runs cases <paramref name="first"/>… of each family, <paramref name="count"/> of them.</summary>
    public static FuzzReport Run(IEnumerable<FuzzFamily> families, int count, ulong seed, FuzzSources sources, FuzzScope scope,
        int first = 0, Action<FuzzCaseResult>? onCase = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        var results = new List<FuzzCaseResult>();
        foreach (var family in families)
        {
            for (var i = first; i < first + count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                var result = RunCase(family, seed, i, sources, scope);
                results.Add(result);
                onCase?.Invoke(result);
            }
        }
        return new(results, clock.Elapsed);
    }

    public static FuzzCaseResult RunCase(FuzzFamily family, ulong seed, int index, FuzzSources sources, FuzzScope scope)
    {
        var random = FuzzRandom.ForCase(family, seed, index);
        var work = Directory.CreateTempSubdirectory("ldm-fuzz-").FullName;
        try
        {
            var (mutation, outcome, message) = family switch
            {
                // A third of the safetensors cases mutate a model's weights; the rest a small file read directly.
                FuzzFamily.SafeTensors when random.Next(3) == 0 => ModelFuzzTarget.Run(family, random, sources, scope, work),
                FuzzFamily.SafeTensors => FileFuzzTargets.SafeTensors(random, work),
                FuzzFamily.Image => FileFuzzTargets.Image(random, work),
                FuzzFamily.Options => OptionsFuzzTarget.Run(random, sources, work),
                _ => ModelFuzzTarget.Run(family, random, sources, scope, work),
            };
            return new(family, seed, index, mutation, outcome, message);
        }
        catch (Exception e)
        {
            // The fuzzer itself failed (not the code under test): report it, never hide it.
            return new(family, seed, index, "(fuzzer failure)", FuzzOutcome.Bug, $"{e.GetType().Name}: {e.Message}");
        }
        finally
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
                // A file still open (on Windows) stays behind in the temporary folder; the case's result stands.
            }
        }
    }
}
