import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { LongdocError } from "../shared/errors.ts";
import { redactUrl } from "../shared/log.ts";
import { createModelClient } from "../shared/model/client.ts";
import { loadSettings, DEFAULT_QWEN_BASE_URL } from "../shared/settings.ts";
import { readStackCoordinates, regionOfQueueUrl, stackClients, type StackCoordinates } from "./stack.ts";

// `longdoc doctor`: what a first run needs, checked one line at a time, each failure with what to
// do about it. Locally: Node and the model endpoint. With --deployed also the AWS credentials and
// region, the stage's outputs, the stack answering, and the stage's SST secrets being set.

/** The SST secrets the stack needs set per stage (infra/secrets.ts, infra/events.ts). */
export const SECRET_NAMES = ["DashscopeApiKey", "WebhookSecret"];
/** Node that runs the package: node:sqlite (the local emulator) is unflagged from 22.13. */
export const NODE_NEEDED = [22, 13] as const;

export interface Check {
  name: string;
  /** true passed, false must be fixed, null not checked (said why in `detail`). */
  ok: boolean | null;
  detail: string;
  fix?: string;
}

export interface DoctorOptions {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  deployed?: boolean;
  stage?: string;
  /** The names of the stage's secrets (default: `sst secret list --stage S` in `cwd`, values never kept). */
  listSecrets?: (stage: string | null, cwd: string) => Promise<string[]>;
  /** How long a credential lookup or a call may take before it counts as failed. */
  timeoutMs?: number;
}

export interface DoctorReport {
  ok: boolean;
  checks: Check[];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 300);

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = o.timeoutMs ?? 15_000;
  const checks: Check[] = [checkNode(process.versions.node)];
  checks.push(...(await checkModel(o.env, o.deployed ?? false, timeoutMs)));
  if (o.deployed) checks.push(...(await checkDeployed(o, timeoutMs)));
  return { ok: checks.every((c) => c.ok !== false), checks };
}

export function checkNode(version: string): Check {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const ok = major > NODE_NEEDED[0] || (major === NODE_NEEDED[0] && minor >= NODE_NEEDED[1]);
  return { name: "node", ok, detail: `Node ${version} (longdoc needs ${NODE_NEEDED.join(".")} or later)`, ...(!ok && { fix: `install Node ${NODE_NEEDED.join(".")} or later` }) };
}

/** The key, the endpoint's region against LONGDOC_REGION, and one tiny call: key accepted, model there. */
async function checkModel(env: Readonly<Record<string, string | undefined>>, deployed: boolean, timeoutMs: number): Promise<Check[]> {
  let settings;
  try {
    settings = loadSettings(env, {}, { logLevel: "error" });
  } catch (e) {
    return [{ name: "model endpoint", ok: false, detail: firstLine(e), fix: "fix the variable it names (QWEN_BASE_URL, LONGDOC_REGION, LONGDOC_CATALOG)" }];
  }
  const { apiKey, baseURL } = settings.endpoint;
  const where = `${redactUrl(baseURL ?? DEFAULT_QWEN_BASE_URL)} (region ${settings.catalog.region}, ${settings.catalog.regionName})`;
  if (!apiKey) {
    return [
      deployed
        ? { name: "model key", ok: null, detail: "DASHSCOPE_API_KEY is not set here, so the key the stack uses (its DashscopeApiKey secret) is not tried", fix: `export DASHSCOPE_API_KEY=<the same key> and run doctor again to check it answers on ${where}` }
        : { name: "model key", ok: null, detail: "DASHSCOPE_API_KEY is not set: local runs answer from the built-in simulator" },
    ];
  }
  const model = Object.keys(settings.catalog.models).includes("qwen3-max") ? "qwen3-max" : Object.keys(settings.catalog.models)[0]!;
  const client = createModelClient({ apiKey, baseURL: baseURL!, timeoutMs });
  try {
    // The smallest real call: one token, no thinking. It costs a few input tokens.
    await withTimeout(client.chat({ model, messages: [{ role: "user", content: "Say OK." }], maxOutputTokens: 1, thinking: { enabled: false } }), timeoutMs, where);
    return [{ name: "model key", ok: true, detail: `the key is accepted on ${where} and ${model} answers there` }];
  } catch (e) {
    const code = LongdocError.is(e) ? e.code : "internal";
    const fix =
      code === "model_auth"
        ? "Model Studio keys belong to one region: set QWEN_BASE_URL to the endpoint of the key's region (docs/qwen-api.md), or create a key in this region"
        : code === "model_not_found"
          ? `${model} is not offered on this region's endpoint: choose a region that has it (QWEN_BASE_URL)`
          : code === "model_billing"
            ? "the account cannot be billed: check its balance or plan in the Model Studio console"
            : "check QWEN_BASE_URL and the network";
    return [{ name: "model key", ok: false, detail: `${where}: ${firstLine(e)}`, fix }];
  }
}

async function checkDeployed(o: DoctorOptions, timeoutMs: number): Promise<Check[]> {
  const checks: Check[] = [];
  let coords: StackCoordinates | undefined;
  try {
    coords = readStackCoordinates(o.env, o.cwd, o.stage);
    checks.push({ name: "stack outputs", ok: true, detail: `bucket ${coords.bucket} (${coords.from.bucket}), queue ${coords.queueUrl} (${coords.from.queueUrl})` });
  } catch (e) {
    checks.push({ name: "stack outputs", ok: false, detail: firstLine(e), fix: `deploy with 'npx sst deploy --stage ${o.stage ?? "<stage>"}' in this folder (docs/deploy.md), or pass --stage` });
  }
  // The SDK's own chain (env, profile, SSO, instance role), as submit and status use it.
  const probe = stackClients(coords ?? { bucket: "x", queueUrl: "https://queue.invalid/", table: null, from: { bucket: "", queueUrl: "" } }, o.env);
  let credentials = false;
  try {
    const c = await withTimeout(probe.s3.config.credentials(), timeoutMs, "the AWS credential chain");
    credentials = Boolean(c.accessKeyId);
    const from = o.env.AWS_ACCESS_KEY_ID ? "AWS_ACCESS_KEY_ID" : o.env.AWS_PROFILE ? `profile ${o.env.AWS_PROFILE}` : "the default profile or role";
    checks.push({ name: "aws credentials", ok: true, detail: `found (from ${from})` });
  } catch (e) {
    checks.push({ name: "aws credentials", ok: false, detail: `none found: ${firstLine(e)}`, fix: "set AWS_PROFILE (after 'aws configure' or 'aws sso login'), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" });
  }
  const queueRegion = coords ? regionOfQueueUrl(coords.queueUrl) : undefined;
  let region: string | undefined;
  try {
    region = await probe.s3.config.region();
  } catch {
    region = undefined;
  }
  if (!region) {
    checks.push({ name: "aws region", ok: false, detail: "no region set", fix: "set AWS_REGION (or a region in your AWS profile): the region you deploy to" });
  } else if (queueRegion && region !== queueRegion) {
    checks.push({ name: "aws region", ok: false, detail: `${region} is set, but the stack's queue is in ${queueRegion}`, fix: `set AWS_REGION=${queueRegion}, or pass --stage for the stage deployed in ${region}` });
  } else {
    checks.push({ name: "aws region", ok: true, detail: region + (queueRegion ? " (the stack's region)" : "") });
  }
  if (coords && credentials) {
    try {
      await withTimeout(probe.s3.send(new HeadBucketCommand({ Bucket: coords.bucket })), timeoutMs, `s3://${coords.bucket}`);
      await withTimeout(probe.sqs.send(new GetQueueAttributesCommand({ QueueUrl: coords.queueUrl, AttributeNames: ["QueueArn"] })), timeoutMs, coords.queueUrl);
      checks.push({ name: "stack reachable", ok: true, detail: `the runs bucket and the task queue answer with these credentials` });
    } catch (e) {
      checks.push({ name: "stack reachable", ok: false, detail: firstLine(e), fix: "the credentials must be of the account the stack is in, with access to its bucket and queue (docs/deploy.md lists the permissions)" });
    }
  } else {
    checks.push({ name: "stack reachable", ok: null, detail: "not checked: needs the stack's outputs and AWS credentials" });
  }
  checks.push(await checkSecrets(o, credentials, coords));
  probe.s3.destroy();
  probe.sqs.destroy();
  return checks;
}

async function checkSecrets(o: DoctorOptions, credentials: boolean, coords: StackCoordinates | undefined): Promise<Check> {
  if (!credentials) return { name: "secrets", ok: null, detail: `not checked: reading the stage's secrets (${SECRET_NAMES.join(", ")}) needs AWS credentials` };
  const stage = o.stage ?? coords?.stage ?? null;
  let names: string[];
  try {
    names = await (o.listSecrets ?? sstSecretNames)(stage, o.cwd);
  } catch (e) {
    return { name: "secrets", ok: false, detail: `could not list them: ${firstLine(e)}`, fix: `run 'npx sst secret list${stage ? ` --stage ${stage}` : ""}' in the repository to see why` };
  }
  const missing = SECRET_NAMES.filter((n) => !names.includes(n));
  if (!missing.length) return { name: "secrets", ok: true, detail: `${SECRET_NAMES.join(" and ")} are set${stage ? ` for stage ${stage}` : ""}` };
  return { name: "secrets", ok: false, detail: `not set${stage ? ` for stage ${stage}` : ""}: ${missing.join(", ")}`, fix: missing.map((n) => `npx sst secret set ${n} <value>${stage ? ` --stage ${stage}` : ""}`).join("; ") };
}

/** `sst secret list` prints `NAME=value` lines: only the names are kept. */
export function secretNamesOf(output: string): string[] {
  return [...output.matchAll(/^([A-Za-z][A-Za-z0-9_]*)=/gm)].map((m) => m[1]!);
}

async function sstSecretNames(stage: string | null, cwd: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("npx", ["--no-install", "sst", "secret", "list", ...(stage ? ["--stage", stage] : [])], { cwd, timeout: 120_000, maxBuffer: 4 * 1024 * 1024 });
  return secretNamesOf(stdout);
}

/** The report as lines: `ok`, `FAIL` or `--` (not checked), the check, what was found, and what to do. */
export function renderDoctor(r: DoctorReport): string {
  const mark = (c: Check) => (c.ok === true ? "ok  " : c.ok === false ? "FAIL" : "--  ");
  const lines = r.checks.map((c) => `${mark(c)}  ${c.name}: ${c.detail}` + (c.fix ? `\n      fix: ${c.fix}` : ""));
  const failed = r.checks.filter((c) => c.ok === false).length;
  lines.push(failed ? `${failed} problem(s) to fix before the first job` : "ready for a first job");
  return lines.join("\n");
}
