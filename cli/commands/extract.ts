/**
 * `longdoc extract <file> [--json]`: the document's text exactly as the model sees it (page and
 * sheet markers included; the text always ends with one newline, printed as is). With --json,
 * one line instead: {format, bytes, chars, tokens, pages?, sheets?, encoding?}, tokens being the
 * exact Qwen token count of that text, encoding the one a text file was read in. `--encoding`
 * states a text file's encoding, as `encoding:` does in a job file. Only regular files are read.
 * A file that cannot be read: message on stderr, exit 1.
 */
import type { Command } from "commander";
import { DEFAULT_MAX_BYTES, loadDocument } from "../../shared/documents/index.ts";
import { readDocumentFile } from "../../shared/documents/read-file.ts";
import { countTokens } from "../../shared/tokens/index.ts";
import { isKnownEncoding } from "../../shared/documents/encoding.ts";
import { EXIT, fail, usageError } from "../exit.ts";
import type { Edge } from "../edge.ts";

export interface ExtractSummary {
  format: string;
  bytes: number;
  chars: number;
  tokens: number;
  pages?: number;
  sheets?: string[];
  /** Text formats: the encoding the file was read in. */
  encoding?: string;
}

export function registerExtract(program: Command, edge: Edge): void {
  program
    .command("extract")
    .description("print a document's text exactly as the model sees it (page and sheet markers included)")
    .argument("<file>", "a PDF, DOCX, XLSX, CSV, HTML, Markdown, text or JSON file")
    .option("--json", "print one JSON object instead: format, bytes, chars, tokens, and pages, sheets or encoding")
    .option("--encoding <label>", "the text file's encoding (gbk, big5, shift_jis, euc-kr, utf-16le, windows-1252...) when detection cannot tell it")
    .action(async (file: string, opts: { json?: boolean; encoding?: string }) => {
      try {
        if (opts.encoding !== undefined && !isKnownEncoding(opts.encoding)) throw usageError(`--encoding '${opts.encoding}': not an encoding longdoc can decode (try gbk, gb18030, big5, shift_jis, euc-kr, utf-16le, windows-1252)`);
        const bytes = await readDocumentFile(file, DEFAULT_MAX_BYTES);
        const doc = await loadDocument({ bytes, name: file }, { encoding: opts.encoding });
        if (opts.json) {
          const summary: ExtractSummary = { format: doc.format, bytes: doc.bytes, chars: doc.chars, tokens: countTokens(doc.text) };
          if (doc.pages !== undefined) summary.pages = doc.pages;
          if (doc.sheets !== undefined) summary.sheets = doc.sheets;
          if (doc.encoding !== undefined) summary.encoding = doc.encoding;
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
