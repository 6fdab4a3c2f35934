/** Token usage as the API bills it; kept apart from the client so readers of results need no SDK. */
export interface Usage {
  inputTokens: number;
  /** completion_tokens: the answer plus the reasoning trace, as billed. */
  outputTokens: number;
  reasoningTokens: number;
  /** Input tokens read from the context cache (billed at the cache-hit rate). */
  cachedTokens: number;
  /** Input tokens written to an explicit cache block (billed at 125%). */
  cacheWriteTokens?: number;
}

export const zeroUsage = (): Usage => ({ inputTokens: 0, outputTokens: 0, reasoningTokens: 0, cachedTokens: 0 });

export function addUsage(a: Usage, b: Usage): Usage {
  const sum: Usage = {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    cachedTokens: a.cachedTokens + b.cachedTokens,
  };
  const written = (a.cacheWriteTokens ?? 0) + (b.cacheWriteTokens ?? 0);
  return written > 0 ? { ...sum, cacheWriteTokens: written } : sum;
}
