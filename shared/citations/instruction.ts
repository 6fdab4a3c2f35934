/**
 * The instruction that asks for citations (`citations: verify`). It follows the documents (it is
 * part of the prompt's tail), so the cached document prefix is the same with and without it. It
 * names only the forms this call's documents need, with one example, and the file name first when
 * the call has several documents.
 */
import { baseName } from "./parse.ts";
import { placeKind, type PlaceKind } from "./places.ts";

/** The first words of the instruction: the simulator recognises a call that asks for citations by them. */
export const CITATION_INSTRUCTION_START = "Back every figure and factual claim with a citation";

const FORMS: Record<PlaceKind, { markup: string; where: string; example: string }> = {
  pages: { markup: 'p. N: "exact quote"', where: 'N is the number in the page\'s "--- page N ---" marker', example: 'p. 12: "net sales increased 4 percent"' },
  sheets: { markup: 'sheet NAME: "exact quote"', where: 'NAME is the sheet\'s name from its "## Sheet:" heading', example: 'sheet Revenue: "Net sales | 12553"' },
  none: { markup: '"exact quote"', where: "for a document without pages", example: '"net sales increased 4 percent"' },
};

export function citationInstruction(documents: readonly { source: string; text: string }[]): string {
  const kinds = documents.map((d) => placeKind(d.text));
  const several = documents.length > 1;
  const first = new Map<PlaceKind, string>();
  kinds.forEach((k, i) => first.has(k) || first.set(k, baseName(documents[i]!.source)));
  if (!first.size) first.set("none", "");
  const name = (k: PlaceKind) => (several ? `${first.get(k)}${k === "none" ? ":" : ""} ` : "");
  const forms = [...first.keys()].map((k) => `[${name(k)}${FORMS[k].markup}] (${FORMS[k].where})`);
  const k0 = [...first.keys()][0]!;
  return [
    `${CITATION_INSTRUCTION_START}: right after it, quote the passage it comes from, copied word for word from the document (a few words to one sentence), in square brackets:`,
    ...forms,
    ...(several ? ["Start each citation with the document's file name, as above."] : []),
    `Example: Net sales rose 4% [${name(k0)}${FORMS[k0].example}].`,
  ].join("\n");
}
