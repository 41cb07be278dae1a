using System.CommandLine;
using LatentDiffusion.Pipeline.Schedulers;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm samplers</c>: the sampler registry as a table (or JSON): names, diffusers class and schedule types.</summary>
internal static class SamplersCommand
{
    /// <summary>One registry entry as <c>ldm samplers --json</c> writes it.</summary>
    internal sealed record SamplerRow(string Name, string A1111Name, string ScheduleType, string DiffusersClass, IReadOnlyList<string> Schedules, IReadOnlyList<string> Aliases);

    public static Command Create(CliContext context)
    {
        var json = new Option<bool>("--json") { Description = "Write JSON instead of a table" };
        var command = new Command("samplers", "List the samplers (--sampler) and the schedule types (--schedule) each supports") { json };
        command.SetAction((parsed, _) =>
        {
            var rows = Rows();
            if (parsed.GetValue(json))
            {
                context.Out.WriteLine(Json.Serialize(rows));
                return Task.FromResult(0);
            }
            var table = new Table().Border(TableBorder.Rounded)
                .AddColumn(new TableColumn("--sampler").NoWrap()).AddColumn("AUTOMATIC1111").AddColumn("diffusers class").AddColumn("--schedule");
            foreach (var row in rows)
                table.AddRow(Markup.Escape(row.Name), Markup.Escape($"{row.A1111Name} ({row.ScheduleType})"), Markup.Escape(row.DiffusersClass), Markup.Escape(string.Join(", ", row.Schedules)));
            context.Console.Write(table);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Every entry of <see cref="Samplers.All"/>, in its order.</summary>
    internal static IReadOnlyList<SamplerRow> Rows() => Samplers.All
        .Select(s => new SamplerRow(s.Name, s.DisplayName, s.ScheduleType, s.ClassName, Samplers.SchedulesOf(s).Select(t => t.Name).ToArray(), s.Aliases))
        .ToArray();
}
