/**
 * The optional judging call for sampled text answers (`judge: true`): one more call over the same
 * cached prefix that reads the k answers and picks one, saying why. Pure: the prompt and the
 * parsing of the reply.
 */

/** The judging message starts with this; the simulator recognises it by these words. */
export const JUDGE_INSTRUCTION = "Several answers to the request above were sampled independently.";

/** Each answer sits between numbered tags, so a tag inside an answer cannot end it early. */
export const sampleBlock = (n: number, text: string) => `<sample n="${n}">\n${text}\n</sample n="${n}">`;

export function judgePrompt(answers: string[]): string {
  return [
    `${JUDGE_INSTRUCTION} Judge them against the documents: which one is the most accurate and complete?`,
    ...answers.map((a, i) => sampleBlock(i + 1, a)),
    'Reply with "Chosen: N" on the first line (N is the sample number), then say why in a few sentences.',
  ].join("\n\n");
}

/** The samples in a judging message, in order (used by the simulator). */
export function samplesIn(text: string): string[] {
  const out: string[] = [];
  for (let n = 1; ; n++) {
    const open = `<sample n="${n}">\n`;
    const close = `\n</sample n="${n}">`;
    const start = text.indexOf(open);
    const end = start < 0 ? -1 : text.indexOf(close, start + open.length);
    if (end < 0) return out;
    out.push(text.slice(start + open.length, end));
  }
}

/** The judge's pick (1-based) and reason, or null when the reply does not name a sample in range. */
export function parseJudgement(reply: string, k: number): { chosen: number; why: string } | null {
  // "Chosen: 2", "**Chosen:** sample 2", "chosen：2"
  const m = /^\s*\**\s*chosen\s*\**\s*[:：]\s*\**\s*(?:sample\s*)?(\d+)/im.exec(reply);
  if (!m) return null;
  const chosen = Number(m[1]);
  if (!(chosen >= 1 && chosen <= k)) return null;
  return { chosen, why: reply.slice(m.index + m[0].length).replace(/^[\s.:-]*(why\s*[:：])?\s*/i, "").trim() };
}
