/**
 * DOCX → text: mammoth turns the document body into semantic HTML (headings from the Heading
 * styles, lists, tables with merged cells as colspan/rowspan, footnotes and endnotes at the
 * end), then the HTML renderer (html.ts) writes Markdown-flavoured text: `#` headings, `- ` /
 * `1. ` list items, Markdown tables. Images are not read (nor their alt text). Page headers and footers are not part of the text (mammoth skips them).
 *
 * The ZIP is opened with the archive-bomb cap first (zip.ts); media and embedded objects are
 * never inflated. mammoth holds the whole body as objects, about 2 KB per XML element and 16
 * bytes per byte of text (measured), so before it runs:
 * - the body parts (document, footnotes, endnotes, comments) are refused above MAX_BODY_XML_BYTES
 *   of XML from the sizes the ZIP declares, before anything is inflated;
 * - after inflating, above MAX_BODY_XML_ELEMENTS elements;
 * - with `maxTokens`, when the text the body holds has more tokens than that by a sound lower
 *   bound (tokens/bound.ts), counted on the `w:t` text mammoth would read.
 * Together they keep one document's extraction under about 1.2 GB (a Lambda has 2 GB).
 */
import mammoth from "mammoth";
import { TokenFloor } from "../tokens/bound.ts";
import { htmlToText } from "./html.ts";
import { docError, formatBytes, tooManyTokens } from "./util.ts";
import { readZipDirectory, storedZip, unzipBounded } from "./zip.ts";

/** Beyond mammoth's defaults (Heading 1-6 and friends): title styles become headings too. */
const STYLE_MAP = ["p[style-name='Title'] => h1:fresh", "p[style-name='Subtitle'] => h2:fresh"];

const SKIP_PARTS = /^word\/(media|embeddings|fonts)\//i;

/** The parts mammoth turns into text. */
const BODY_PARTS = /^word\/(document|footnotes|endnotes|comments)\.xml$/i;
/** XML of the body parts longdoc reads at most (by the sizes the ZIP declares). */
export const MAX_BODY_XML_BYTES = 32 * 1024 * 1024;
/** XML elements of the body parts longdoc reads at most (a 300-page handbook has 150,000). */
export const MAX_BODY_XML_ELEMENTS = 400_000;

export async function loadDocx(bytes: Uint8Array, name: string, maxUncompressedBytes: number, opts: { maxTokens?: number } = {}): Promise<{ text: string; tables: number }> {
  const entries = readZipDirectory(bytes) ?? [];
  const declared = (test: (name: string) => boolean) => entries.filter((e) => test(e.name)).reduce((n, e) => n + e.uncompressedSize, 0);
  const body = declared((n) => BODY_PARTS.test(n));
  // Over the whole archive's cap, unzipBounded refuses it with that cap's message.
  if (body > MAX_BODY_XML_BYTES && declared((n) => !SKIP_PARTS.test(n)) <= maxUncompressedBytes) {
    throw docError(
      "document_too_large",
      name,
      `its body (word/document.xml and notes) declares ${formatBytes(body)} of XML, over the ${formatBytes(MAX_BODY_XML_BYTES)} longdoc reads from a DOCX (the memory of one worker); not inflated`,
    );
  }
  const files = unzipBounded(bytes, name, { maxUncompressedBytes, keep: (n) => !SKIP_PARTS.test(n) });
  if (!files.has("word/document.xml")) {
    throw docError("document_corrupt", name, "not a valid DOCX: word/document.xml is missing");
  }
  const scan = scanBody(files);
  if (scan.elements > MAX_BODY_XML_ELEMENTS) {
    throw docError(
      "document_too_large",
      name,
      `its body has ${scan.elements} XML elements, over the ${MAX_BODY_XML_ELEMENTS} longdoc reads from a DOCX (the memory of one worker); not extracted`,
    );
  }
  if (opts.maxTokens !== undefined && scan.minTokens > opts.maxTokens) throw tooManyTokens(name, scan.minTokens, opts.maxTokens);
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

/** Regions mammoth does not read as text: deleted and moved-from runs, and the mc:Choice of alternate content (it reads the fallback). */
const SKIPPED = /<(\/?)(w:del|w:moveFrom|mc:Choice)(?=[\s>/])([^>]*?)(\/?)>/g;
/** A `w:t` element's text (entities left in). */
const TEXT_RUN = /<w:t(?:\s[^>]*)?>([^<]*)<\/w:t>/g;

/**
 * The body parts' XML elements, and a lower bound on the tokens of the text mammoth reads from
 * them: the `w:t` text outside SKIPPED regions, entities left out (which only lowers it).
 */
function scanBody(files: Map<string, Uint8Array>): { elements: number; minTokens: number } {
  let elements = 0;
  const floor = new TokenFloor();
  const decoder = new TextDecoder();
  for (const [part, data] of files) {
    if (!BODY_PARTS.test(part)) continue;
    for (let i = data.indexOf(0x3c); i >= 0; i = data.indexOf(0x3c, i + 1)) if (data[i + 1] !== 0x2f) elements++;
    const xml = decoder.decode(data);
    for (const [from, to] of readRegions(xml)) {
      TEXT_RUN.lastIndex = from;
      for (let m = TEXT_RUN.exec(xml); m && m.index < to; m = TEXT_RUN.exec(xml)) floor.add(m[1]!.includes("&") ? m[1]!.replace(/&[^;]*;/g, "") : m[1]!);
    }
  }
  return { elements, minTokens: floor.value };
}

/** [from, to) ranges of the XML outside SKIPPED elements (nesting followed). */
function readRegions(xml: string): [number, number][] {
  const out: [number, number][] = [];
  let depth = 0;
  let start = 0;
  SKIPPED.lastIndex = 0;
  for (let m = SKIPPED.exec(xml); m; m = SKIPPED.exec(xml)) {
    if (m[4] === "/") continue; // <w:del .../>: a mark, no content
    if (m[1] === "/") {
      if (depth > 0 && --depth === 0) start = m.index + m[0].length;
    } else if (depth++ === 0) {
      out.push([start, m.index]);
    }
  }
  if (depth === 0) out.push([start, xml.length]);
  return out;
}
