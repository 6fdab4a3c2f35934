import { z } from "zod";

/**
 * The job file, version 1 (see the contract). Every object is strict: an unknown field is an
 * error, so a typo such as `maxOutputToken` is caught before any money is spent.
 */

const documentSource = z.union([
  z.strictObject({ path: z.string().min(1, "must be a file path or glob") }),
  z.strictObject({
    s3: z.string().regex(/^s3:\/\/[a-z0-9.-]{3,63}(\/.*)?$/, "must look like s3://bucket/prefix/"),
  }),
]);

const question = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "must be lowercase letters, digits, '-' or '_'"),
  ask: z.string().regex(/\S/, "must not be empty or only whitespace"),
});

const thinking = z.strictObject({
  enabled: z.boolean(),
  budget: z.int().min(1).max(81_920, "must be at most 81920 (the API's thinking_budget cap)").optional(),
});

/**
 * What an answer that hit the output cap (finish_reason "length") becomes: `fail` (default) ends
 * the item failed with kind output_truncated, the partial answer kept; `keep` accepts it and
 * marks the result `answerTruncated: true`; `continue` (thinking off, text output) asks the model to
 * go on from where it stopped (the API's partial mode) up to 3 times and joins the pieces; an
 * answer still cut after that fails as with `fail`.
 */
const onTruncated = z.enum(["fail", "keep", "continue"]).optional();

const output = z.discriminatedUnion("format", [
  z.strictObject({ format: z.literal("text"), onTruncated }),
  z.strictObject({
    format: z.literal("json"),
    onTruncated,
    schema: z.record(z.string(), z.unknown()).optional(),
    schemaFile: z.string().min(1).optional(),
  }),
]);

/** https only: the body names the job and its results. No user:password in the URL (it would be logged and stored). */
const webhookUrl = z
  .string()
  .regex(/^https:\/\/\S+$/i, "must be an https:// URL (never http: the call carries the job's results, and plain http would expose them)")
  .superRefine((value, ctx) => {
    if (!/^https:\/\//i.test(value)) return;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return void ctx.addIssue({ code: "custom", message: "is not a valid URL" });
    }
    if (url.username || url.password) ctx.addIssue({ code: "custom", message: "must not carry a user name or password; the receiver checks the X-Longdoc-Signature header instead" });
  });

const limits = z.strictObject({
  concurrency: z.int().min(1).max(1000).optional(),
  rpm: z.int().min(1).optional(),
  tpm: z.int().min(1).optional(),
  maxCostUsd: z.number().positive().optional(),
  /** The cap in the endpoint's currency (CNY for Beijing); maxCostUsd is the same cap for USD regions. */
  maxCost: z.number().positive().optional(),
  maxDocumentBytes: z.int().min(1).optional(),
});

export const jobSpecSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9-]+$/, "must match [a-z0-9-]+ (it names the job and its inbox/ prefix)"),
    description: z.string().optional(),
    documents: z.array(documentSource).min(1, "list at least one document source"),
    system: z.string().optional(),
    questions: z.array(question).min(1, "list at least one question").optional(),
    prompt: z.string().regex(/\S/, "must not be empty or only whitespace").optional(),
    model: z.string().min(1).default("qwen3-max"),
    thinking: thinking.default({ enabled: false }),
    maxOutputTokens: z.int().min(1).max(65_536).default(4096),
    output: output.default({ format: "text" }),
    packing: z.enum(["per-document", "all-documents", "packed"]).default("per-document"),
    truncate: z.enum(["none", "middle"]).default("none"),
    /** per-question: one call per question over the same document prefix, so later calls hit the cache. */
    calls: z.enum(["per-item", "per-question"]).default("per-item"),
    /** explicit: mark the document prefix with cache_control (write 125%, hits 10% of the input price). */
    cache: z.enum(["implicit", "explicit"]).default("implicit"),
    limits: limits.default({}),
    schedule: z
      .string()
      .regex(/^(cron|rate)\(.+\)$/, "must be an EventBridge expression such as cron(0 6 ? * MON *) or rate(1 day)")
      .optional(),
    trigger: z.literal("upload").optional(),
    /** Told when the job ends: an https URL called with the end-of-job event, signed (see shared/run/webhook.ts). */
    notify: z.strictObject({ webhook: webhookUrl }).optional(),
  })
  .superRefine((job, ctx) => {
    if (!job.questions && !job.prompt) {
      ctx.addIssue({ code: "custom", path: ["questions"], message: "give `questions:` or `prompt:`" });
    }
    if (job.questions && job.prompt) {
      ctx.addIssue({ code: "custom", path: ["prompt"], message: "use either `questions:` or `prompt:`, not both" });
    }
    const ids = new Set<string>();
    job.questions?.forEach((q, i) => {
      if (ids.has(q.id)) ctx.addIssue({ code: "custom", path: ["questions", i, "id"], message: `duplicate question id '${q.id}'` });
      ids.add(q.id);
    });
    if (job.output.format === "json" && !job.output.schema === !job.output.schemaFile) {
      ctx.addIssue({ code: "custom", path: ["output"], message: "json output needs exactly one of `schema` or `schemaFile`" });
    }
    if (job.calls === "per-question" && (!job.questions || job.output.format === "json")) {
      ctx.addIssue({ code: "custom", path: ["calls"], message: "per-question calls need `questions:` and text output" });
    }
    if (job.packing === "packed" && (job.calls === "per-question" || job.output.format === "json")) {
      ctx.addIssue({
        code: "custom",
        path: ["packing"],
        message: "packed calls answer in one <answer document=\"N\"> section per document: they need `calls: per-item` and text output",
      });
    }
    if (job.output.onTruncated === "continue" && (job.thinking.enabled || job.output.format === "json")) {
      ctx.addIssue({
        code: "custom",
        path: ["output", "onTruncated"],
        message: "continue uses the API's partial mode, which works only with thinking off, and longdoc continues text answers only; set thinking.enabled: false and output.format: text, or use fail or keep",
      });
    }
    if (job.output.format === "json" && job.thinking.enabled) {
      ctx.addIssue({
        code: "custom",
        path: ["thinking", "enabled"],
        message: "the API refuses JSON output with thinking on; set thinking.enabled: false or output.format: text",
      });
    }
  });

export type JobSpec = z.output<typeof jobSpecSchema>;
export type DocumentSource = z.output<typeof documentSource>;
export type Question = z.output<typeof question>;
