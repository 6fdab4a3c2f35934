import { LongdocError } from "../shared/errors.ts";
import type { ResolveOptions } from "../shared/job/resolve.ts";
import type { Catalog } from "../shared/model/catalog.ts";
import { redactUrl } from "../shared/log.ts";
import { planCall } from "../shared/model/plan.ts";
import type { Settings } from "../shared/settings.ts";
import type { JobSpec } from "../shared/job/schema.ts";
import { loadJobForSubmit, type LoadedJob } from "../shared/submit/load.ts";
import { applyOverrides } from "../shared/submit/overrides.ts";
import type { JobOverrides } from "../shared/submit/select.ts";

/**
 * Every check a run makes of a job before it uploads anything or calls the model: the file
 * parses and validates, the model exists, every `path:` source matches files inside the allowed
 * folders, the output schema resolves and compiles, and the call's settings suit the model.
 * `validate`, `estimate` and `run` share it, so a job `validate` passes does not fail `run` on
 * any of these. Throws the first problem (a LongdocError naming the file and field).
 */
export async function checkJob(jobFile: string, catalog: Catalog, opts: ResolveOptions = {}, overrides: JobOverrides = {}): Promise<LoadedJob> {
  // This run's --model and --max-cost first: the call is checked against the model it will use.
  const loaded = applyOverrides(await loadJobForSubmit(jobFile, catalog, opts), overrides);
  try {
    planCall(loaded.spec, loaded.model, []);
    // A question's own thinking is checked against the model as its call will be sent.
    for (const q of loaded.spec.questions ?? []) if (q.thinking) planCall({ ...loaded.spec, questions: [q] }, loaded.model, []);
  } catch (e) {
    if (LongdocError.is(e) && e.code === "job_invalid") throw new LongdocError("job_invalid", `${jobFile}: ${e.message}`);
    throw e;
  }
  return loaded;
}

/** Dotfile and similar notes from document resolution, on stderr. */
export const warnOnStderr = (message: string) => void process.stderr.write(`warning: ${message}\n`);

/**
 * Why a set QWEN_BASE_URL is not used: without DASHSCOPE_API_KEY a local run starts its own
 * simulator. Said on stderr so a user who exported only the URL (say, of `longdoc sim`) knows.
 */
export function ignoredBaseUrlNote(env: Readonly<Record<string, string | undefined>>, settings: Readonly<Settings>): string | null {
  const url = env.QWEN_BASE_URL?.trim();
  if (!url || settings.endpoint.apiKey) return null;
  return (
    `note: QWEN_BASE_URL is set (${redactUrl(url)}) but DASHSCOPE_API_KEY is not, so it is not used: this run starts its own local simulator. ` +
    "To call that endpoint, export DASHSCOPE_API_KEY too (a `longdoc sim` simulator accepts any key unless started with --api-key)."
  );
}

/** A job names a webhook that this machine cannot sign for: said before the run, not discovered in notify.json after. */
export function webhookNote(spec: Pick<JobSpec, "notify">, settings: Readonly<Settings>): string | null {
  if (!spec.notify?.webhook || settings.notify.webhookSecret) return null;
  return "note: the job names a webhook (notify.webhook) but LONGDOC_WEBHOOK_SECRET is not set, so local runs will not call it (an unsigned call could not be told from a forged one); the deployed stack signs with its WebhookSecret";
}
