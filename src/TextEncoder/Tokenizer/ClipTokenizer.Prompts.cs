namespace LatentDiffusion.TextEncoder;

public sealed partial class ClipTokenizer
{
    /// <summary>
    /// Tokenises a user prompt for the text model: optional AUTOMATIC1111 emphasis (per-token
    /// weights), and either truncation to 75 tokens (reported in the result) or AUTOMATIC1111's
    /// 75-token chunking. Like AUTOMATIC1111, each emphasis fragment is tokenised on its own, so
    /// <c>"(red)dish"</c> gives the tokens of "red" and "dish", not of "reddish".
    /// </summary>
    public PromptEncoding EncodePrompt(string prompt, PromptEncodingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new PromptEncodingOptions();
        var fragments = options.ParseWeights ? PromptAttention.Parse(prompt) : [new PromptFragment(prompt, 1.0)];

        var tokens = new List<int>();
        var weights = new List<float>();
        var breaks = new List<int>(); // token positions where a BREAK starts a new chunk
        foreach (var fragment in fragments)
        {
            if (fragment.IsBreak)
            {
                breaks.Add(tokens.Count);
                continue;
            }
            var ids = EncodeIds(fragment.Text);
            tokens.AddRange(ids);
            weights.AddRange(Enumerable.Repeat((float)fragment.Weight, ids.Length));
        }

        int[] untruncated = [BosTokenId, .. tokens, EosTokenId];
        if (options.LongPrompt == LongPromptMode.Truncate)
        {
            var row = Pack(tokens, weights, ModelMaxLength);
            return new PromptEncoding([row], untruncated, row.DroppedTokenCount);
        }
        return new PromptEncoding(Chunk(tokens, weights, breaks, options.CommaBacktrack), untruncated, 0);
    }

    // AUTOMATIC1111's tokenize_line: fill chunks of ModelMaxLength - 2 tokens; a BREAK closes the
    // current chunk (even an empty one); with comma backtrack, a full chunk whose last comma is
    // close to its end hands the tokens after that comma to the next chunk.
    private List<ClipEncoding> Chunk(List<int> tokens, List<float> weights, List<int> breaks, int commaBacktrack)
    {
        var chunkLength = ModelMaxLength - 2;
        var commaId = vocabulary.TryGetValue("," + ByteLevelAlphabet.EndOfWord, out var comma) ? comma : -1;
        var rows = new List<ClipEncoding>();
        var currentIds = new List<int>(chunkLength);
        var currentWeights = new List<float>(chunkLength);
        var lastComma = -1;

        void NextChunk()
        {
            rows.Add(Pack(currentIds, currentWeights, ModelMaxLength));
            currentIds = new List<int>(chunkLength);
            currentWeights = new List<float>(chunkLength);
            lastComma = -1;
        }

        var nextBreak = 0;
        for (var position = 0; position <= tokens.Count; position++)
        {
            while (nextBreak < breaks.Count && breaks[nextBreak] == position)
            {
                NextChunk();
                nextBreak++;
            }
            if (position == tokens.Count) break;

            var token = tokens[position];
            if (token == commaId)
            {
                lastComma = currentIds.Count;
            }
            else if (commaBacktrack > 0 && currentIds.Count == chunkLength && lastComma != -1 && currentIds.Count - lastComma <= commaBacktrack)
            {
                var cut = lastComma + 1;
                var movedIds = currentIds.GetRange(cut, currentIds.Count - cut);
                var movedWeights = currentWeights.GetRange(cut, currentWeights.Count - cut);
                currentIds.RemoveRange(cut, currentIds.Count - cut);
                currentWeights.RemoveRange(cut, currentWeights.Count - cut);
                NextChunk();
                currentIds.AddRange(movedIds);
                currentWeights.AddRange(movedWeights);
            }
            if (currentIds.Count == chunkLength) NextChunk();
            currentIds.Add(token);
            currentWeights.Add(weights[position]);
        }
        if (currentIds.Count > 0 || rows.Count == 0) NextChunk();
        return rows;
    }
}
