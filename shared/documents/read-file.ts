/**
 * Reads a document from disk: regular files only (a device such as /dev/zero, a pipe or a socket
 * would be read forever), and never more than the size limit, even from a file whose size the
 * file system does not know (files under /proc say 0 bytes).
 */
import { open, stat } from "node:fs/promises";
import { DocumentError } from "../errors.ts";
import { formatBytes } from "./util.ts";

const CHUNK = 1 << 20;

/** The file's bytes, or a DocumentError naming `name` (default: the path). */
export async function readDocumentFile(file: string, maxBytes: number, name = file): Promise<Uint8Array> {
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new DocumentError("document_unreadable", `${name}: is a directory, not a document`);
    if (!st.isFile()) throw new DocumentError("document_unreadable", `${name}: not a regular file (a device, pipe or socket); only regular files are read as documents`);
    // Refuse before reading a huge file into memory.
    if (st.size > maxBytes) throw new DocumentError("document_too_large", `${name}: ${formatBytes(st.size)} is over the limit of ${formatBytes(maxBytes)} (maxBytes)`);
    const fh = await open(file, "r");
    try {
      const chunks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const buf = new Uint8Array(Math.min(CHUNK, maxBytes + 1 - total));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        chunks.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
        total += bytesRead;
        if (total > maxBytes) throw new DocumentError("document_too_large", `${name}: more than ${formatBytes(maxBytes)} (maxBytes) to read; stopped there`);
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof DocumentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new DocumentError("document_missing", `${name}: no such file`);
    if (code === "EACCES" || code === "EPERM") throw new DocumentError("document_unreadable", `${name}: permission denied`);
    throw new DocumentError("document_unreadable", `${name}: cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
}
