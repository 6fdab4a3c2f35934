/**
 * Encoders for the legacy encodings Node can only decode: each table is TextDecoder's own
 * mapping, inverted (every one- and two-byte sequence decoded once), so the bytes a test writes
 * are exactly what the decoder under test reads back. Two-byte encodings only (GB18030's
 * four-byte sequences are not needed for the characters tests use).
 */
const tables = new Map<string, Map<string, number[]>>();

function table(encoding: string): Map<string, number[]> {
  let t = tables.get(encoding);
  if (t) return t;
  t = new Map();
  const dec = new TextDecoder(encoding, { fatal: true });
  const put = (bytes: number[]) => {
    try {
      const s = dec.decode(Uint8Array.from(bytes));
      if ([...s].length === 1 && !t!.has(s)) t!.set(s, bytes);
    } catch {
      /* not a sequence of this encoding */
    }
  };
  for (let b = 0; b < 0x100; b++) put([b]);
  if (encoding !== "windows-1252") for (let a = 0x81; a < 0x100; a++) for (let b = 0x40; b < 0x100; b++) put([a, b]);
  tables.set(encoding, t);
  return t;
}

/** `text` in `encoding` (gbk, gb18030, big5, shift_jis, euc-kr, windows-1252, utf-16le/be). */
export function encodeText(text: string, encoding: string): Uint8Array {
  if (encoding === "utf-16le" || encoding === "utf-16be") {
    const out = new Uint8Array(text.length * 2);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      const [hi, lo] = [c >> 8, c & 0xff];
      out[2 * i] = encoding === "utf-16le" ? lo : hi;
      out[2 * i + 1] = encoding === "utf-16le" ? hi : lo;
    }
    return out;
  }
  const t = table(encoding);
  const out: number[] = [];
  for (const ch of text) {
    const bytes = ch.charCodeAt(0) < 0x80 ? [ch.charCodeAt(0)] : t.get(ch);
    if (!bytes) throw new Error(`${JSON.stringify(ch)} has no ${encoding} encoding`);
    out.push(...bytes);
  }
  return Uint8Array.from(out);
}
