import { LongdocError } from "./errors.ts";

/** Singapore: where qwen3-max is confirmed (reference/qwen-api.md §1). */
export const DEFAULT_QWEN_BASE_URL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

export interface ModelEndpoint {
  /** null: no key, so local runs use the simulator. */
  apiKey: string | null;
  baseURL: string | null;
}

/** Reads the model endpoint from the environment once, at the edge; errors name the variable. */
export function readModelEndpoint(env: Record<string, string | undefined>): ModelEndpoint {
  const apiKey = env.DASHSCOPE_API_KEY?.trim() || null;
  const baseURL = env.QWEN_BASE_URL?.trim() || null;
  if (baseURL !== null) {
    let url: URL;
    try {
      url = new URL(baseURL);
    } catch {
      throw new LongdocError("usage", `QWEN_BASE_URL is not a URL: '${baseURL}'`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new LongdocError("usage", `QWEN_BASE_URL must be http(s), got '${url.protocol}'`);
  }
  if (apiKey !== null && !/^[\x21-\x7e]+$/.test(apiKey)) throw new LongdocError("usage", "DASHSCOPE_API_KEY has spaces or non-ASCII characters; paste the key alone");
  return { apiKey, baseURL: baseURL ?? (apiKey ? DEFAULT_QWEN_BASE_URL : null) };
}
