/**
 * pdf.js finds page i by walking the page tree from its root, and a root whose Kids array lists
 * every page (what most generators write) makes each lookup visit all of them: reading a
 * 20,000-page PDF page by page took 113 s, four times as long for twice the pages. pdf.js also
 * has a single linear walk that lists every page (Catalog.getAllPageDicts, its repair path).
 *
 * This installs a load hook (node:module registerHooks) that changes pdf.js's worker module as it
 * is loaded: getPageDict answers from one such walk, made on the first lookup of a document of
 * more than PAGES_FOR_ONE_WALK pages, and falls back to the tree walk for any page the list does
 * not have. When the source no longer has the method (another pdf.js version), nothing changes
 * and pages are found as before; a test measures the time per page, so that would be noticed.
 * Must run before pdf.js is first imported.
 */
// A namespace import: a Node without registerHooks (before 22.15) must still load this module.
import * as nodeModule from "node:module";

const WORKER = /\/pdfjs-dist\/legacy\/build\/pdf\.worker\.mjs$/;
const METHOD = "  async getPageDict(pageIndex) {\n";
const PAGES_FOR_ONE_WALK = 64;

const PATCH = `${METHOD}    let pageCount = 0;
    try {
      pageCount = this.numPages;
    } catch {}
    if (pageCount > ${PAGES_FOR_ONE_WALK}) {
      this.longdocAllPages ??= this.getAllPageDicts().catch(() => null);
      const listed = (await this.longdocAllPages)?.get(pageIndex);
      if (listed && !(listed[0] instanceof Error)) return listed;
    }
`;

let installed = false;

/** Installs the hook once per process (a no-op on a Node without registerHooks). */
export function installPageIndex(): void {
  const registerHooks = (nodeModule as Partial<typeof nodeModule>).registerHooks;
  if (installed || typeof registerHooks !== "function") return;
  installed = true;
  registerHooks({
    load(url, context, nextLoad) {
      const result = nextLoad(url, context);
      if (!WORKER.test(url) || result.source === undefined) return result;
      const source = typeof result.source === "string" ? result.source : Buffer.from(result.source as Uint8Array).toString("utf8");
      if (source.indexOf(METHOD) < 0 || source.indexOf(METHOD) !== source.lastIndexOf(METHOD)) return result;
      return { ...result, source: source.replace(METHOD, PATCH) };
    },
  });
}
