import { z } from "zod";

/** Questions per job: with `calls: per-question` each is one call per item. */
export const MAX_QUESTIONS = 100;

/**
 * The job file, version 1 (see the contract). Every object is strict: an unknown field is an
 * error, so a typo such as `maxOutputToken` is caught before any money is spent.
 */

/** A text document's encoding, when detection cannot tell it: any label TextDecoder knows. */
const encoding = z
  .string()
  .refine(
    (label) => {
      try {
        new TextDecoder(label);
        return true;
      } catch {
        return false;
      }
    },
    { message: "must be an encoding such as utf-8, gbk, gb18030, big5, shift_jis, euc-kr, utf-16le or windows-1252" },
  )
  .optional()
  .describe("The text encoding of the files this source matches (gbk, big5, shift_jis, euc-kr, utf-16le, windows-1252...), when longdoc cannot tell it: it decides over detection. Text, Markdown, CSV, JSON and HTML files only.");

const documentSource = z.union([
  z.strictObject({
    path: z
      .string()
      .min(1, "must be a file path or glob")
      .describe("A file or a glob (`docs/*.pdf`, `**/*.md`), relative to the job file's folder; it must resolve inside that folder or the repository unless the command is given `--allow-outside`. Local runs and `longdoc submit`, which uploads the files."),
    encoding,
  }),
  z.strictObject({
    s3: z
      .string()
      .regex(/^s3:\/\/[a-z0-9.-]{3,63}(\/.*)?$/, "must look like s3://bucket/prefix/")
      .describe("Every object under this S3 prefix (`s3://bucket/prefix/`), listed when the run is submitted. Deployed runs."),
    encoding,
  }),
]);

const thinking = z.strictObject({
  enabled: z.boolean().describe("Thinking on or off: with it on, the model's reasoning trace is kept in `reasoning.md`."),
  budget: z
    .int()
    .min(1)
    .max(81_920, "must be at most 81920 (the API's thinking_budget cap)")
    .optional()
    .describe("Thinking tokens at most (the API's `thinking_budget`); it counts against the model's context with the prompt and `maxOutputTokens`, and the worker lowers it when the time left before its deadline is short."),
});

const question = z.strictObject({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/, "must be lowercase letters, digits, '-' or '_'")
    .describe("The question's id: lowercase letters, digits, '-' or '_', unique in the job. Its answer is filed under it."),
  ask: z.string().regex(/\S/, "must not be empty or only whitespace").describe("The question, as the model reads it after the documents."),
  thinking: thinking
    .optional()
    .describe("This question's own thinking, in place of the job's (needs `calls: per-question`): a quick lookup and a deep analysis over one cached prefix."),
});

const tool = z.enum(["code"]).describe("`code`: the model may run JavaScript it writes in a sandbox (shared/tools/code.ts).");

/** Numbers in sampled JSON answers agree when within either bound. */
const numericTolerance = z.strictObject({
  absolute: z.number().min(0).optional().describe("Numbers agree when they differ by at most this much."),
  relative: z
    .number()
    .min(0)
    .max(1, "is a fraction: 0.01 means 1%")
    .optional()
    .describe("Numbers agree when they differ by at most this fraction of the larger one (0.005 is 0.5 %)."),
});

const onTruncated = z
  .enum(["fail", "keep", "continue"])
  .optional()
  .describe(
    "What an answer cut at `maxOutputTokens` (finish_reason `length`) becomes: `fail` (the default) fails the item with kind output_truncated, the partial answer kept; `keep` accepts it and marks the result `answerTruncated: true`; `continue` (thinking off, text output, no samples or tools) asks the model to go on from where it stopped (the API's partial mode) up to 3 times and joins the pieces, and an answer still cut after that fails as with `fail`.",
  );

const output = z.discriminatedUnion("format", [
  z.strictObject({ format: z.literal("text").describe("`text`: the answer is Markdown, in `answer.md`."), onTruncated }),
  z.strictObject({
    format: z.literal("json").describe("`json`: the answer is one JSON document that must match the answer schema, in `answer.json`; needs thinking off."),
    onTruncated,
    schema: z.record(z.string(), z.unknown()).optional().describe("The answer's JSON Schema, inline."),
    schemaFile: z.string().min(1).optional().describe("A file holding the answer's JSON Schema, relative to the job file."),
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
    if (url.username || url.password) ctx.addIssue({ code: "custom", message: "must not carry a user name or password; the receiver checks the webhook-signature header instead" });
  });

const limits = z.strictObject({
  concurrency: z.int().min(1).max(1000).optional().describe("A local run's worker processes (at most 4, and no more than the job's items, unless `longdoc run --workers` says otherwise). A deployed stack records it in the job but runs as many workers as its own ceiling allows."),
  rpm: z.int().min(1).optional().describe("Requests per minute for this job, a cap inside the account's quota that every job shares."),
  tpm: z.int().min(1).optional().describe("Tokens per minute for this job, a cap inside the account's quota that every job shares."),
  maxCostUsd: z.number().positive().optional().describe("The cost cap in US dollars, for endpoints that bill in USD; refused elsewhere (use `maxCost`)."),
  maxCost: z
    .number()
    .positive()
    .optional()
    .describe("The cost cap in the endpoint's currency (CNY for Beijing). Every call reserves its worst case against it before it starts, fleet-wide; past it, the remaining items end skipped with kind cost_cap."),
  maxDocumentBytes: z.int().min(1).optional().describe("The largest document in bytes (100 MiB when not given); a larger one fails its item with kind document_too_large."),
  maxToolRounds: z
    .int()
    .min(1)
    .max(16)
    .optional()
    .describe("Model rounds of the tool loop per sample, 4 when not given (needs `tools:`); the last round is asked to answer without tools."),
});

export const jobSpecSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9-]+$/, "must match [a-z0-9-]+ (it names the job and its inbox/ prefix)"),
    description: z.string().optional(),
    documents: z.array(documentSource).min(1, "list at least one document source"),
    system: z.string().optional(),
    questions: z.array(question).min(1, "list at least one question").max(MAX_QUESTIONS, `at most ${MAX_QUESTIONS} questions (each may be its own call per document)`).optional(),
    prompt: z.string().regex(/\S/, "must not be empty or only whitespace").optional(),
    model: z.string().min(1).default("qwen3-max"),
    /** A catalog model with a larger input for the items whose prompt does not fit `model`. */
    fallbackModel: z.string().min(1).optional(),
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
    /** k calls per item over the same document prefix; JSON answers by field-wise majority. */
    samples: z.int().min(1).max(8, "must be at most 8").default(1),
    /** Below this agreement (0..1) an item fails with kind low_agreement, its samples kept. */
    minAgreement: z.number().gt(0, "must be above 0").max(1, "must be at most 1").optional(),
    numericTolerance: numericTolerance.optional(),
    /** Text answers with samples: one more call reads the k answers and picks one, saying why. */
    judge: z.boolean().optional(),
    tools: z.array(tool).min(1, "list at least one tool, or leave `tools` out").optional(),
    /** verify: the prompt asks for a page-and-quote citation behind each figure and claim, and every quote is checked (shared/citations). */
    citations: z.enum(["off", "verify"]).default("off"),
    /** Below this citation score (0..1) an item fails with kind ungrounded, its answer and citations kept. */
    minCitationScore: z.number().min(0, "must be 0 or more").max(1, "must be at most 1").optional(),
    /** `code`: the first round must call the code tool (tool_choice naming it); `auto`: the model decides. */
    toolChoice: z.enum(["auto", "code"]).optional(),
    schedule: z
      .string()
      .regex(/^(cron|rate)\(.+\)$/, "must be an EventBridge expression such as cron(0 6 ? * MON *) or rate(1 day)")
      .optional(),
    trigger: z.literal("upload").optional(),
    mode: z
      .enum(["realtime", "batch"])
      .default("realtime")
      .describe("`realtime` (the default): each item is one streamed call now. `batch`: every call goes through the provider's Batch API at 50 % of the realtime price, answered within 24 hours (docs/batch-mode.md); needs a model and region with batch support, and no samples, tools or `onTruncated: continue`."),
    batch: z
      .strictObject({
        fallback: z
          .enum(["realtime", "fail"])
          .default("realtime")
          .describe("What a line the batch did not answer (in its error file, or in a batch that failed or expired) becomes: `realtime` (the default) runs it as a realtime call at the realtime price; `fail` fails its item with the provider's error."),
      })
      .default({ fallback: "realtime" })
      .describe("`mode: batch` only: what happens to the calls the provider's batch did not answer."),
    /** Told when the job ends: an https URL called with the end-of-job event, signed (see shared/run/webhook.ts). */
    notify: z.strictObject({ webhook: webhookUrl.describe("An https URL POSTed the job-finished event, signed with HMAC-SHA256 (docs/job-events.md).") }).optional(),
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
    const thinkingAnywhere = job.thinking.enabled || (job.questions ?? []).some((q) => q.thinking?.enabled);
    if (job.output.onTruncated === "continue" && (thinkingAnywhere || job.output.format === "json")) {
      ctx.addIssue({
        code: "custom",
        path: ["output", "onTruncated"],
        message: "continue uses the API's partial mode, which works only with thinking off (the job's and every question's), and longdoc continues text answers only; set thinking.enabled: false and output.format: text, or use fail or keep",
      });
    }
    if (job.output.onTruncated === "continue" && (job.samples > 1 || job.tools)) {
      ctx.addIssue({
        code: "custom",
        path: ["output", "onTruncated"],
        message: "continue picks up one cut answer; sampled or tool-using calls (samples:, tools:) are not continued; use fail or keep",
      });
    }
    if (job.mode === "batch") {
      // Several dependent calls (each sample judged, each tool round, each continuation) cannot be one batch line each.
      const dependent = [job.samples > 1 && "samples:", job.tools && "tools:", job.output.onTruncated === "continue" && "output.onTruncated: continue"].filter(Boolean);
      if (dependent.length) {
        ctx.addIssue({ code: "custom", path: ["mode"], message: `mode: batch sends each call as one independent batch line; ${dependent.join(", ")} need(s) several dependent calls per item: use mode: realtime, or leave ${dependent.join(" and ")} out` });
      }
    }
    checkReasoning(job, ctx);
    if (job.minCitationScore !== undefined && job.citations !== "verify") {
      ctx.addIssue({ code: "custom", path: ["minCitationScore"], message: "needs `citations: verify` (without it no quote is checked)" });
    }
    if (job.output.format === "json" && job.thinking.enabled) {
      ctx.addIssue({
        code: "custom",
        path: ["thinking", "enabled"],
        message: "the API refuses JSON output with thinking on; set thinking.enabled: false or output.format: text",
      });
    }
  });

/** Samples, tools and per-question depth: what the API refuses (docs/qwen-api.md §3) is refused here first. */
function checkReasoning(job: JobSpec, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  if (job.samples < 2) {
    if (job.minAgreement !== undefined) issue(["minAgreement"], "needs `samples:` of 2 or more (one sample always agrees with itself)");
    if (job.numericTolerance) issue(["numericTolerance"], "needs `samples:` of 2 or more (it compares sampled answers)");
    if (job.judge) issue(["judge"], "needs `samples:` of 2 or more (it picks one of the sampled answers)");
  }
  if (job.judge && job.output.format === "json") issue(["judge"], "JSON answers are merged field by field; a judging call is for text output");
  if (job.samples > 1 && job.packing === "packed") {
    issue(["samples"], "packed calls answer several documents in one text; sample per-document or all-documents items instead");
  }
  if (job.tools && new Set(job.tools).size !== job.tools.length) issue(["tools"], "lists a tool twice");
  if (!job.tools) {
    if (job.toolChoice) issue(["toolChoice"], "needs `tools: [code]`");
    if (job.limits.maxToolRounds !== undefined) issue(["limits", "maxToolRounds"], "needs `tools:`");
  }
  const thinkingAnywhere = job.thinking.enabled || (job.questions ?? []).some((q) => q.thinking?.enabled);
  if (job.toolChoice === "code" && thinkingAnywhere) {
    issue(["toolChoice"], "the API refuses a tool_choice that names a function in thinking mode; use `toolChoice: auto` or turn thinking off");
  }
  job.questions?.forEach((q, i) => {
    if (!q.thinking) return;
    if (job.calls !== "per-question") {
      issue(["questions", i, "thinking"], "a question's own thinking needs `calls: per-question` (otherwise all questions share one call)");
    }
    if (q.thinking.enabled && job.output.format === "json") {
      issue(["questions", i, "thinking", "enabled"], "the API refuses JSON output with thinking on");
    }
  });
}

export type JobSpec = z.output<typeof jobSpecSchema>;
export type DocumentSource = z.output<typeof documentSource>;
export type Question = z.output<typeof question>;
