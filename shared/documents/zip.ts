/**
 * ZIP reading for DOCX/XLSX with an archive-bomb cap.
 *
 * 1. The central directory (the index at the end of the file) is read first; it declares each
 *    entry's compressed and uncompressed size. Nothing is inflated yet.
 * 2. If the declared uncompressed sizes of the entries we need add up to more than the cap,
 *    the document is refused (document_too_large) before any inflation.
 * 3. Entries are then inflated with fflate's streaming inflater in small slices, counting the
 *    real output: an entry that inflates past its declared size (a lying header) or past the cap
 *    is stopped at once, so neither memory nor CPU time can run away.
 *
 * The parsed entries are handed to mammoth / exceljs as a new ZIP with stored (uncompressed)
 * entries, so those libraries never run an inflater of their own on untrusted data.
 */
import { Inflate, strFromU8, zipSync, type Zippable } from "fflate";
import { LongdocError } from "../errors.ts";
import { docError, formatBytes } from "./util.ts";

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const u16 = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const u32 = (b: Uint8Array, i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
const u64 = (b: Uint8Array, i: number) => u32(b, i) + u32(b, i + 4) * 2 ** 32;

/** ZIP local-file-header magic at offset 0 ("PK\3\4"), or an empty archive ("PK\5\6"). */
export function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && ((b[2] === 3 && b[3] === 4) || (b[2] === 5 && b[3] === 6));
}

/** The central directory's entries, or undefined when it cannot be found or read. */
export function readZipDirectory(b: Uint8Array): ZipEntry[] | undefined {
  // End-of-central-directory record: within the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = b.length - 22; i >= 0 && i >= b.length - 22 - 65535; i--) {
    if (b[i] === 0x50 && u32(b, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return undefined;
  let count = u16(b, eocd + 10);
  let offset = u32(b, eocd + 16);
  // ZIP64: the locator sits just before the EOCD record.
  if ((offset === 0xffffffff || count === 0xffff) && eocd >= 20 && u32(b, eocd - 20) === 0x07064b50) {
    const z = u64(b, eocd - 12);
    if (z + 56 <= b.length && u32(b, z) === 0x06064b50) {
      count = u64(b, z + 32);
      offset = u64(b, z + 48);
    }
  }
  const entries: ZipEntry[] = [];
  let p = offset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > b.length || u32(b, p) !== 0x02014b50) return undefined;
    const flags = u16(b, p + 8);
    const nameLen = u16(b, p + 28);
    const extraLen = u16(b, p + 30);
    const commentLen = u16(b, p + 32);
    if (p + 46 + nameLen + extraLen > b.length) return undefined;
    let compressedSize = u32(b, p + 20);
    let uncompressedSize = u32(b, p + 24);
    let localHeaderOffset = u32(b, p + 42);
    const name = strFromU8(b.subarray(p + 46, p + 46 + nameLen), !(flags & 0x800));
    // ZIP64 extra field: the 64-bit values of whichever fields are 0xffffffff, in this order.
    for (let e = p + 46 + nameLen, end = e + extraLen; e + 4 <= end; ) {
      const id = u16(b, e);
      const len = u16(b, e + 2);
      if (id === 1) {
        let q = e + 4;
        if (uncompressedSize === 0xffffffff) (uncompressedSize = u64(b, q)), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = u64(b, q)), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(b, q);
      }
      e += 4 + len;
    }
    entries.push({ name, method: u16(b, p + 10), compressedSize, uncompressedSize, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

export interface UnzipOptions {
  /** Cap on the total uncompressed bytes of the kept entries. */
  maxUncompressedBytes: number;
  /** Which entries to inflate (default: all). */
  keep?: (entryName: string) => boolean;
}

/** Slice of compressed input fed to the inflater at a time: bounds one step's output (~1032x). */
const SLICE = 16 * 1024;

/** Inflate the kept entries with the bomb checks described in the module comment. */
export function unzipBounded(b: Uint8Array, name: string, opts: UnzipOptions): Map<string, Uint8Array> {
  const all = readZipDirectory(b);
  if (!all) throw docError("document_corrupt", name, "not a readable ZIP container (its central directory is missing or damaged)");
  const entries = all.filter((e) => !e.name.endsWith("/") && (opts.keep ? opts.keep(e.name) : true));
  const cap = opts.maxUncompressedBytes;
  const declared = entries.reduce((s, e) => s + e.uncompressedSize, 0);
  if (declared > cap) {
    throw docError(
      "document_too_large",
      name,
      `its ZIP entries declare ${formatBytes(declared)} uncompressed, over the limit of ${formatBytes(cap)} (maxUncompressedBytes); refusing to inflate (possible archive bomb)`,
    );
  }
  const out = new Map<string, Uint8Array>();
  let total = 0;
  for (const e of entries) {
    const lh = e.localHeaderOffset;
    if (lh + 30 > b.length || u32(b, lh) !== 0x04034b50) throw docError("document_corrupt", name, `damaged ZIP entry ${e.name} (bad local header)`);
    const start = lh + 30 + u16(b, lh + 26) + u16(b, lh + 28);
    const end = start + e.compressedSize;
    if (end > b.length) throw docError("document_corrupt", name, `truncated ZIP entry ${e.name}`);
    const data = b.subarray(start, end);
    if (e.method === 0) {
      if (e.compressedSize !== e.uncompressedSize) throw docError("document_corrupt", name, `damaged ZIP entry ${e.name} (size mismatch)`);
      total += data.length;
      out.set(e.name, data);
      continue;
    }
    if (e.method !== 8) throw docError("document_corrupt", name, `ZIP entry ${e.name} uses unsupported compression method ${e.method}`);
    const chunks: Uint8Array[] = [];
    let size = 0;
    const inflater = new Inflate((chunk) => {
      size += chunk.length;
      total += chunk.length;
      if (total > cap) {
        throw docError("document_too_large", name, `inflating its ZIP entries exceeds the limit of ${formatBytes(cap)} (maxUncompressedBytes); stopped (possible archive bomb)`);
      }
      if (size > e.uncompressedSize) {
        throw docError("document_corrupt", name, `ZIP entry ${e.name} inflates past its declared size of ${formatBytes(e.uncompressedSize)} (damaged or a disguised archive bomb)`);
      }
      chunks.push(chunk);
    });
    try {
      if (data.length === 0) inflater.push(new Uint8Array(0), true);
      for (let i = 0; i < data.length; i += SLICE) inflater.push(data.subarray(i, Math.min(i + SLICE, data.length)), i + SLICE >= data.length);
    } catch (err) {
      if (LongdocError.is(err)) throw err;
      throw docError("document_corrupt", name, `damaged ZIP entry ${e.name} (${err instanceof Error ? err.message : String(err)})`, err);
    }
    out.set(e.name, concat(chunks, size));
  }
  return out;
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const r = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    r.set(c, o);
    o += c.length;
  }
  return r;
}

/** Re-pack entries as a ZIP with stored (uncompressed) entries, for libraries that want a ZIP. */
export function storedZip(files: Map<string, Uint8Array>): Uint8Array {
  const z: Zippable = {};
  for (const [k, v] of files) z[k] = [v, { level: 0 }];
  return zipSync(z, { level: 0 });
}
