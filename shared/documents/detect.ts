/**
 * Format detection: content first (magic bytes, ZIP entry names, text sniffing), the file
 * extension only as a hint among the text formats or when the content is too damaged to say.
 */
import { looksBinary, decodeText } from "./text.ts";
import { docError } from "./util.ts";
import { isZip, readZipDirectory } from "./zip.ts";

export type DocFormat = "pdf" | "docx" | "xlsx" | "csv" | "html" | "markdown" | "text" | "json";

const CFB_MAGIC = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

export function extensionOf(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? name;
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
}

const EXT_FORMAT: Record<string, DocFormat> = {
  pdf: "pdf",
  docx: "docx",
  docm: "docx",
  dotx: "docx",
  xlsx: "xlsx",
  xlsm: "xlsx",
  xltx: "xlsx",
  csv: "csv",
  tsv: "csv",
  tab: "csv",
  html: "html",
  htm: "html",
  xhtml: "html",
  md: "markdown",
  markdown: "markdown",
  mdx: "markdown",
  txt: "text",
  text: "text",
  log: "text",
  json: "json",
  jsonl: "json",
  ndjson: "json",
  geojson: "json",
};

function startsWith(b: Uint8Array, sig: readonly number[], at = 0): boolean {
  if (b.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[at + i] !== sig[i]) return false;
  return true;
}
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

/** Known non-document binaries, named in the error so the user knows what they sent. */
function binaryKind(b: Uint8Array, binary: boolean): string | undefined {
  // Short ASCII signatures ("BM", "MZ"...) also start ordinary text: trust them only on binary data.
  const weak: [string, number[]][] = [
    ["a BMP image", ascii("BM")],
    ["an executable", ascii("MZ")],
    ["a bzip2 archive", ascii("BZh")],
    ["an MP3 file", ascii("ID3")],
  ];
  if (binary) for (const [kind, sig] of weak) if (startsWith(b, sig)) return kind;
  const table: [string, number[], number?][] = [
    ["a PNG image", [0x89, 0x50, 0x4e, 0x47]],
    ["a JPEG image", [0xff, 0xd8, 0xff]],
    ["a GIF image", ascii("GIF8")],
    ["a TIFF image", [0x49, 0x49, 0x2a, 0x00]],
    ["a TIFF image", [0x4d, 0x4d, 0x00, 0x2a]],
    ["a gzip archive", [0x1f, 0x8b]],
    ["a 7-Zip archive", [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]],
    ["a RAR archive", ascii("Rar!")],
    ["an xz archive", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
    ["an executable", [0x7f, 0x45, 0x4c, 0x46]],
    ["a SQLite database", ascii("SQLite format 3")],
    ["a WebAssembly module", [0x00, 0x61, 0x73, 0x6d]],
    ["an RTF document", ascii("{\\rtf")],
    ["a PostScript file", ascii("%!PS")],
    ["an Ogg file", ascii("OggS")],
    ["an MP4/MOV/HEIC file", ascii("ftyp"), 4],
  ];
  for (const [kind, sig, at] of table) if (startsWith(b, sig, at ?? 0)) return kind;
  if (startsWith(b, ascii("RIFF")) && startsWith(b, ascii("WEBP"), 8)) return "a WebP image";
  return undefined;
}

/** Whether a CFB (OLE2) container holds an encrypted OOXML package: its stream names are UTF-16LE. */
function cfbHasEncryptedPackage(b: Uint8Array): boolean {
  const needle = Array.from("EncryptedPackage", (c) => [c.charCodeAt(0), 0]).flat();
  outer: for (let i = 0; i + needle.length <= b.length; i++) {
    if (b[i] !== needle[0]) continue;
    for (let j = 1; j < needle.length; j++) if (b[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function pdfHeaderAt(b: Uint8Array): boolean {
  // The spec allows junk before %PDF- (within the first 1024 bytes, as readers accept).
  const n = Math.min(b.length - 5, 1024);
  for (let i = 0; i <= n; i++) if (b[i] === 0x25 && startsWith(b, ascii("%PDF-"), i)) return true;
  return false;
}

const SUPPORTED = "PDF, DOCX, XLSX, CSV, HTML, Markdown, plain text or JSON";

/**
 * The document's format. Throws DocumentError `document_unsupported` for anything else
 * (`document_encrypted` for a password-protected Office file whose type the name does not tell).
 */
export function detectFormat(bytes: Uint8Array, name: string): DocFormat {
  const ext = extensionOf(name);
  const hinted = EXT_FORMAT[ext];

  if (pdfHeaderAt(bytes)) return "pdf";

  if (isZip(bytes)) {
    const entries = readZipDirectory(bytes);
    if (!entries) {
      if (hinted === "docx" || hinted === "xlsx") return hinted; // the loader reports it as corrupt
      throw docError("document_unsupported", name, `a damaged ZIP archive, not a supported document (${SUPPORTED})`);
    }
    const names = entries.map((e) => e.name);
    if (names.some((n) => n.startsWith("word/"))) return "docx";
    if (names.some((n) => n.startsWith("xl/"))) return "xlsx";
    if (names.some((n) => n.startsWith("ppt/"))) throw docError("document_unsupported", name, `a PowerPoint presentation (PPTX) is not supported (${SUPPORTED})`);
    if (names.includes("mimetype") && names.includes("content.xml")) {
      throw docError("document_unsupported", name, `an OpenDocument file (ODT/ODS/ODP) is not supported; save it as DOCX or XLSX`);
    }
    throw docError("document_unsupported", name, `a ZIP archive that is not a DOCX or XLSX document (${SUPPORTED})`);
  }

  if (startsWith(bytes, CFB_MAGIC)) {
    if (cfbHasEncryptedPackage(bytes)) {
      if (hinted === "docx" || hinted === "xlsx") return hinted; // the loader reports document_encrypted
      throw docError("document_encrypted", name, "a password-protected (encrypted) Office document; a password is required to open it, and password-protected files are not supported");
    }
    throw docError("document_unsupported", name, "a legacy binary Office file (Word 97-2003 .doc, Excel .xls or PowerPoint .ppt); save it as DOCX or XLSX");
  }

  const binary = looksBinary(bytes);
  const kind = binaryKind(bytes, binary);
  if (kind) {
    const ocr = /image/.test(kind) ? "; images are not read (OCR is not enabled)" : "";
    throw docError("document_unsupported", name, `${kind}, not a supported document (${SUPPORTED})${ocr}`);
  }

  if (binary) {
    // A known document extension on damaged binary content: let that loader say it is corrupt.
    if (hinted === "pdf" || hinted === "docx" || hinted === "xlsx") return hinted;
    throw docError("document_unsupported", name, `binary data, not a supported document (${SUPPORTED})`);
  }

  // Text. Strong content signals first, then the extension, then sniffing.
  const head = decodeText(bytes.subarray(0, 4096)).replace(/^\uFEFF/, "").trimStart();
  const lowerHead = head.slice(0, 2048).toLowerCase();
  if (/^<!doctype html|^<html[\s>]/.test(lowerHead)) return "html";
  if (lowerHead.startsWith("<?xml") && /<html[\s>]/.test(lowerHead)) return "html";
  if (hinted === "pdf" || hinted === "docx" || hinted === "xlsx") return hinted; // text named .pdf etc.: the loader reports it as corrupt
  if (hinted) return hinted;
  if (/^[[{]/.test(head)) {
    try {
      JSON.parse(decodeText(bytes));
      return "json";
    } catch {
      /* not JSON */
    }
  }
  if (/^<(head|body|div|p|table|pre|h[1-6]|section|article|meta|title)[\s>]/.test(lowerHead)) return "html";
  if (/^#{1,6} \S/m.test(head.slice(0, 2048)) || /^```/m.test(head)) return "markdown";
  return "text";
}
