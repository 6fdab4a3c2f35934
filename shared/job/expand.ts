import { createHash, randomBytes } from "node:crypto";
import type { JobSpec } from "./schema.ts";
import type { ItemDocument, JobItem } from "./record.ts";

/**
 * `<name>-<yyyymmdd-hhmmss>-<4 hex>`. With a `token` (what triggered the job: a schedule's time,
 * an upload's key and ETag, a client token) the id is the same every time that trigger is
 * delivered, so a retried event finds its job instead of starting a second one.
 */
export function newJobId(name: string, now: Date, token?: string): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const suffix = token === undefined ? randomBytes(2).toString("hex") : createHash("sha256").update(`${name}\n${token}`).digest("hex").slice(0, 4);
  return `${name}-${stamp}-${suffix}`;
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/\.[a-z0-9]+$/, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 48) || "doc";

const baseName = (source: string) => source.split("/").filter(Boolean).pop() ?? source;

/**
 * Turns a job's documents into items: one per document (the default), or one item that sees
 * every document. Item ids are stable and readable: `001-annual-report-2024`.
 */
export function expandItems(spec: Pick<JobSpec, "packing">, documents: ItemDocument[], packs?: ItemDocument[][]): JobItem[] {
  if (documents.length === 0) return [];
  if (spec.packing === "all-documents") return [{ id: "all-documents", documents }];
  if (spec.packing === "packed") {
    if (!packs) throw new TypeError("packing: packed needs the documents measured into packs first");
    const w = Math.max(3, String(packs.length).length);
    return packs.map((p, i) => ({ id: `pack-${String(i + 1).padStart(w, "0")}`, documents: p }));
  }
  const width = Math.max(3, String(documents.length).length);
  return documents.map((doc, i) => ({ id: `${String(i + 1).padStart(width, "0")}-${slug(baseName(doc.source))}`, documents: [doc] }));
}
