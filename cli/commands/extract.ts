/**
 * `longdoc extract <file> [--json]`: the document's text exactly as the model sees it (page and
 * sheet markers included; the text always ends with one newline, printed as is). With --json,
 * one line instead: {format, bytes, chars, tokens, pages?, sheets?}, tokens being the exact Qwen
 * token count of that text. A file that cannot be read: message on stderr, exit 1.
 */
import { stat, readFile } from "node:fs/promises";
import type { Command } from "commander";
import { DEFAULT_MAX_BYTES, loadDocument } from "../../shared/documents/index.ts";
import { formatBytes } from "../../shared/documents/util.ts";
import { DocumentError } from "../../shared/errors.ts";
import { countTokens } from "../../shared/tokens/index.ts";
import { EXIT, fail } from "../exit.ts";
import type { Edge } from "../edge.ts";

export interface ExtractSummary {
  format: string;
  bytes: number;
  chars: number;
  tokens: number;
  pages?: number;
  sheets?: string[];
}

async function readInput(file: string, maxBytes: number): Promise<Uint8Array> {
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new DocumentError("document_unreadable", `${file}: is a directory, not a document`);
    // Refuse before reading a huge file into memory.
    if (st.size > maxBytes) throw new DocumentError("document_too_large", `${file}: ${formatBytes(st.size)} is over the limit of ${formatBytes(maxBytes)} (maxBytes)`);
    return new Uint8Array(await readFile(file));
  } catch (e) {
    if (e instanceof DocumentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new DocumentError("document_missing", `${file}: no such file`);
    if (code === "EACCES" || code === "EPERM") throw new DocumentError("document_unreadable", `${file}: permission denied`);
    throw new DocumentError("document_unreadable", `${file}: cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function registerExtract(program: Command, edge: Edge): void {
  program
    .command("extract")
    .description("print a document's text exactly as the model sees it (page and sheet markers included)")
    .argument("<file>", "a PDF, DOCX, XLSX, CSV, HTML, Markdown, text or JSON file")
    .option("--json", "print one JSON object instead: format, bytes, chars, tokens, and pages or sheets")
    .action(async (file: string, opts: { json?: boolean }) => {
      try {
        const bytes = await readInput(file, DEFAULT_MAX_BYTES);
        const doc = await loadDocument({ bytes, name: file });
        if (opts.json) {
          const summary: ExtractSummary = { format: doc.format, bytes: doc.bytes, chars: doc.chars, tokens: countTokens(doc.text) };
          if (doc.pages !== undefined) summary.pages = doc.pages;
          if (doc.sheets !== undefined) summary.sheets = doc.sheets;
          process.stdout.write(JSON.stringify(summary) + "\n");
        } else {
          process.stdout.write(doc.text);
        }
        process.exitCode = EXIT.ok;
      } catch (e) {
        fail(e);
      }
    });
}
