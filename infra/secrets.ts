import type { Secret, Sst } from "./platform.ts";

declare const sst: Sst;

/** Set once per stage with `npx sst secret set DashscopeApiKey sk-...`; no placeholder, so a missing key stops the deploy. */
export function createSecrets(): { apiKey: Secret } {
  // Linked as Resource.DashscopeApiKey (`.value`).
  return { apiKey: new sst.Secret("DashscopeApiKey") };
}
