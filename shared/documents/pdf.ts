/**
 * PDF → text with page markers, via pdf.js (`pdfjs-dist`, its Node build, with its CMap data for CJK fonts).
 *
 * Output: for every page, in order, a marker line `--- page N ---` (N = 1-based physical page
 * number, as a PDF viewer counts; empty pages keep their marker) followed by that page's text
 * in reading order (see pdf-layout.ts). Pages are separated by a blank line. The model cites
 * pages by those numbers.
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
import { layoutPage, type PdfTextItem } from "./pdf-layout.ts";
import { docError, hasText, pageMarker, stripControls } from "./util.ts";


/** pdf.js's CMap data (CJK fonts) and standard fonts; pdf.js reads them with fs in Node, as paths. */
const pdfjsRoot = fileURLToPath(new URL("./", import.meta.resolve("pdfjs-dist/package.json")));
const pdfjsData = { cMapUrl: `${pdfjsRoot}cmaps/`, cMapPacked: true, standardFontDataUrl: `${pdfjsRoot}standard_fonts/` };

interface PdfjsError {
  name?: string;
  message?: string;
  code?: number;
}

export async function loadPdf(bytes: Uint8Array, name: string): Promise<{ text: string; pages: number }> {
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
    const text = pages.map((t, i) => `${pageMarker(i + 1)}\n${t}`).join("\n\n");
    return { text, pages: pdf.numPages };
  } finally {
    await task.destroy().catch(() => {});
  }
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
