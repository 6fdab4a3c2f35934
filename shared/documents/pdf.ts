/**
 * PDF → text with page markers, via pdf.js (`pdfjs-dist`, its Node build, with its CMap data for CJK fonts).
 *
 * Output: for every page, in order, a marker line `--- page N ---` (N = 1-based physical page
 * number, as a PDF viewer counts) followed by that page's text in reading order (see
 * pdf-layout.ts). Pages are separated by a blank line. The model cites pages by those numbers.
 * A single empty page keeps its marker; a run of two or more is one line, `--- pages A–B: no
 * text ---` (A and B the first and last of the run), so blank pages cost a few tokens per run,
 * not per page, and the page after the run is still `--- page B+1 ---`.
 *
 * With `maxTokens`, extraction stops as soon as the pages read so far have more tokens than
 * that by a sound lower bound (tokens/bound.ts): input_too_long, the rest is never read.
 *
 * - Encrypted with an empty user password (common: "no copy" restrictions only): opened
 *   silently. A real open password: document_encrypted.
 * - Nothing extractable on any page: document_no_text. If the pages draw no text at all it is a
 *   scanned/image-only PDF ("OCR is not enabled"); if they draw text whose font cannot be mapped
 *   to Unicode (CJK fonts that need Adobe CMap data) the message says so.
 * - Damaged files: pdf.js repairs what it can (rebuilding a broken xref, lenient inflate);
 *   what it cannot open is document_corrupt. A page that fails alone is left empty.
 */
import { fileURLToPath } from "node:url";
import { TokenFloor } from "../tokens/bound.ts";
import { layoutPage, type PdfTextItem } from "./pdf-layout.ts";
import { installPageIndex } from "./pdfjs-pages.ts";
import { docError, emptyPagesMarker, hasText, pageMarker, stripControls, tooManyTokens } from "./util.ts";


/** pdf.js's CMap data (CJK fonts) and standard fonts; pdf.js reads them with fs in Node, as paths. */
const pdfjsRoot = fileURLToPath(new URL("./", import.meta.resolve("pdfjs-dist/package.json")));
const pdfjsData = { cMapUrl: `${pdfjsRoot}cmaps/`, cMapPacked: true, standardFontDataUrl: `${pdfjsRoot}standard_fonts/` };

interface PdfjsError {
  name?: string;
  message?: string;
  code?: number;
}

export async function loadPdf(bytes: Uint8Array, name: string, opts: { maxTokens?: number } = {}): Promise<{ text: string; pages: number }> {
  installPageIndex();
  // The legacy build is pdf.js's Node build; loaded on first PDF only, to keep cold starts short.
  const pdfjs = await import("pdfjs-dist/legacy/build/pdf.mjs");
  const task = pdfjs.getDocument({
    // pdf.js takes ownership of (detaches) the buffer it is given: hand it a copy.
    data: bytes.slice(),
    verbosity: 0,
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
    isOffscreenCanvasSupported: false,
    ...pdfjsData,
  });
  try {
    let pdf;
    try {
      pdf = await task.promise;
    } catch (e) {
      throw openError(e as PdfjsError, name);
    }
    const pages: string[] = [];
    let failed = 0;
    const floor = new TokenFloor();
    for (let i = 1; i <= pdf.numPages; i++) {
      try {
        const page = await pdf.getPage(i);
        const content = await page.getTextContent();
        pages.push(stripControls(layoutPage(content.items as PdfTextItem[], page.view[3] ?? 0)));
        page.cleanup();
      } catch {
        failed++;
        pages.push("");
      }
      if (opts.maxTokens !== undefined && floor.add(pages[pages.length - 1]!).value > opts.maxTokens) throw tooManyTokens(name, floor.value, opts.maxTokens);
    }
    if (pdf.numPages > 0 && failed === pdf.numPages) throw docError("document_corrupt", name, `damaged PDF: none of its ${pdf.numPages} pages could be read`);
    if (!pages.some(hasText)) {
      const drawsText = await pagesDrawText(pdfjs, pdf, Math.min(pdf.numPages, 5));
      if (drawsText) {
        throw docError(
          "document_no_text",
          name,
          `the PDF draws text, but its fonts cannot be mapped to Unicode characters; no text could be extracted`,
        );
      }
      throw docError("document_no_text", name, `no text layer in any of its ${pdf.numPages} page(s): a scanned or image-only PDF; OCR is not enabled`);
    }
    return { text: joinPages(pages), pages: pdf.numPages };
  } finally {
    await task.destroy().catch(() => {});
  }
}

/** The pages' texts with their markers; a run of two or more empty pages is one marker (see the module comment). */
export function joinPages(pages: readonly string[]): string {
  const out: string[] = [];
  for (let i = 0; i < pages.length; ) {
    let end = i;
    while (end < pages.length && !hasText(pages[end]!)) end++;
    if (end - i >= 2) {
      out.push(emptyPagesMarker(i + 1, end));
      i = end;
      continue;
    }
    out.push(`${pageMarker(i + 1)}\n${pages[i]}`);
    i++;
  }
  return out.join("\n\n");
}

function openError(e: PdfjsError, name: string) {
  const msg = e?.message ?? String(e);
  if (e?.name === "PasswordException") {
    return docError("document_encrypted", name, "the PDF is encrypted and a password is required to open it; password-protected PDFs are not supported", e);
  }
  if (e?.name === "InvalidPDFException") return docError("document_corrupt", name, `not a valid PDF, or damaged beyond repair (${msg})`, e);
  return docError("document_corrupt", name, `the PDF could not be opened (${msg})`, e);
}

/** Whether any of the first `n` pages has text-showing operators (fonts, not just images). */
async function pagesDrawText(pdfjs: typeof import("pdfjs-dist/legacy/build/pdf.mjs"), pdf: { getPage(i: number): Promise<{ getOperatorList(): Promise<{ fnArray: number[] }> }> }, n: number): Promise<boolean> {
  const ops = pdfjs.OPS as Record<string, number>;
  const textOps = new Set([ops.showText, ops.showSpacedText, ops.nextLineShowText, ops.nextLineSetSpacingShowText]);
  for (let i = 1; i <= n; i++) {
    try {
      const page = await pdf.getPage(i);
      const list = await page.getOperatorList();
      if (list.fnArray.some((op) => textOps.has(op))) return true;
    } catch {
      /* ignore: judged on the other pages */
    }
  }
  return false;
}
