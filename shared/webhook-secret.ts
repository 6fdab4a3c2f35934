// The form of a webhook signing secret, as the Standard Webhooks specification gives it: settings
// check it when they are read, the webhook sender when it signs.

/** Standard Webhooks secrets: `whsec_` then the base64 of 24 to 64 random bytes. */
const SECRET_PREFIX = "whsec_";

/** The HMAC key of a `whsec_<base64>` secret, or null when the secret is not one. */
export function webhookKey(secret: string): Buffer | null {
  if (!secret.startsWith(SECRET_PREFIX)) return null;
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  const key = Buffer.from(b64, "base64");
  return key.length >= 24 && key.length <= 64 ? key : null;
}

/** Why `secret` cannot sign webhooks, or null when it can. */
export function webhookSecretProblem(secret: string): string | null {
  return webhookKey(secret)
    ? null
    : "must be a Standard Webhooks secret: 'whsec_' followed by the base64 of 24 to 64 random bytes (make one with: echo whsec_$(openssl rand -base64 32))";
}

