using LatentDiffusion.Cli;

// The first Ctrl+C asks the running command to stop through its CancellationToken; a second one
// (after the first has been seen) ends the process the usual way.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (cancellation.IsCancellationRequested) return;
    e.Cancel = true;
    cancellation.Cancel();
};

return await CliApp.RunAsync(args, Console.Out, Console.Error, cancellation.Token);
