// How longdoc's worker code is bundled, on Lambda (SST's esbuild) and for local worker processes.

/**
 * Shipped as packages, not bundled: pdf.js reads its CMaps (CJK fonts) and standard fonts from
 * its own package folder at run time (shared/documents/pdf.ts), which a bundle would not have;
 * quickjs-emscripten (the code tool's sandbox, shared/tools/code.ts) loads its .wasm file from
 * beside its own module, likewise.
 */
export const INSTALLED_PACKAGES = ["pdfjs-dist", "quickjs-emscripten"];

/** CommonJS dependencies inside an ESM bundle need a `require`. */
export const ESM_REQUIRE_BANNER = "import { createRequire as __longdocRequire } from 'node:module'; const require = __longdocRequire(import.meta.url);";
