/**
 * DOCX → text: mammoth turns the document body into semantic HTML (headings from the Heading
 * styles, lists, tables with merged cells as colspan/rowspan, footnotes and endnotes at the
 * end), then the HTML renderer (html.ts) writes Markdown-flavoured text: `#` headings, `- ` /
 * `1. ` list items, Markdown tables. Images are not read (nor their alt text). Page headers and footers are not part of the text (mammoth skips them).
 *
 * The ZIP is opened with the archive-bomb cap first (zip.ts); media and embedded objects are
 * never inflated.
 */
import mammoth from "mammoth";
import { htmlToText } from "./html.ts";
import { docError } from "./util.ts";
import { storedZip, unzipBounded } from "./zip.ts";

/** Beyond mammoth's defaults (Heading 1-6 and friends): title styles become headings too. */
const STYLE_MAP = ["p[style-name='Title'] => h1:fresh", "p[style-name='Subtitle'] => h2:fresh"];

const SKIP_PARTS = /^word\/(media|embeddings|fonts)\//i;

export async function loadDocx(bytes: Uint8Array, name: string, maxUncompressedBytes: number): Promise<{ text: string; tables: number }> {
  const files = unzipBounded(bytes, name, { maxUncompressedBytes, keep: (n) => !SKIP_PARTS.test(n) });
  if (!files.has("word/document.xml")) {
    throw docError("document_corrupt", name, "not a valid DOCX: word/document.xml is missing");
  }
  let html: string;
  try {
    const result = await mammoth.convertToHtml(
      { buffer: Buffer.from(storedZip(files)) },
      {
        styleMap: STYLE_MAP,
        convertImage: mammoth.images.imgElement(async () => ({ src: "" })),
      },
    );
    html = result.value;
  } catch (e) {
    throw docError("document_corrupt", name, `damaged DOCX (${e instanceof Error ? e.message : String(e)})`, e);
  }
  const r = htmlToText(html);
  return { text: r.text, tables: r.tables };
}
