import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { JobFileError, parseJobText } from "../shared/job/load.ts";
import { s3Uri } from "../shared/job/record.ts";
import { getModel, loadCatalog } from "../shared/model/catalog.ts";
import { keys, ObjectStore } from "../shared/run/store.ts";
import { MAX_ITEMS_PER_JOB, MAX_TASK_BYTES, submitJob } from "../shared/submit/submit.ts";
import { MAX_QUESTIONS } from "../shared/job/schema.ts";
import { useLoopback } from "./helpers/loopback.ts";

// Every input has a bound with a message naming it. Bounds tested elsewhere: job file size and
// non-job files (ops-not-a-job), YAML aliases (hardening-cli item 7), --workers 1..64 (hardening-cli
// item 2), document bytes (hardening-store, documents-cli), DOCX/XLSX inflation (documents-generated),
// prompt tokens vs the model's input and context (budget), request body size (the simulator,
// sim-errors). Here: the job's numeric fields and the size of one item's task message.

const base = "name: lim\ndocuments:\n  - path: x\nprompt: Summarise.\n";
const problems = (text: string): string[] => {
  try {
    parseJobText(text, "lim.yaml");
  } catch (e) {
    if (e instanceof JobFileError) return e.message.split("\n");
    throw e;
  }
  return [];
};

describe("job fields have bounds, each refused as file:line: field: message", () => {
  const cases: [string, string, RegExp][] = [
    ["maxOutputTokens over the API's 65,536", "maxOutputTokens: 65537\n", /^lim\.yaml:5: maxOutputTokens: .*65536/],
    ["a thinking budget over the API's 81,920", "thinking: { enabled: true, budget: 81921 }\n", /^lim\.yaml:5: thinking\.budget: must be at most 81920/],
    ["concurrency over 1,000", "limits: { concurrency: 1001 }\n", /^lim\.yaml:5: limits\.concurrency: .*1000/],
    ["a document size limit of 0 bytes", "limits: { maxDocumentBytes: 0 }\n", /^lim\.yaml:5: limits\.maxDocumentBytes: .*1/],
    ["a job name that is a path", "", /^lim\.yaml:1: name: must match \[a-z0-9-\]\+/],
    [`more than ${MAX_QUESTIONS} questions`, "", /^lim\.yaml:\d+: questions: at most 100 questions/],
  ];
  for (const [what, extra, expected] of cases) {
    it(what, () => {
      const manyQuestions = "questions:\n" + Array.from({ length: MAX_QUESTIONS + 1 }, (_, i) => `  - { id: q${i}, ask: "Figure ${i}?" }\n`).join("");
      const text = what.startsWith("a job name")
        ? base.replace("name: lim", "name: ../lim")
        : what.startsWith("more than")
          ? base.replace("prompt: Summarise.\n", manyQuestions)
          : base + extra;
      const found = problems(text);
      expect(found, found.join("\n")).toHaveLength(1);
      expect(found[0]).toMatch(expected);
    });
  }
});

describe("one item's task must fit in an SQS message", () => {
  const loop = useLoopback({ stack: { visibilityTimeoutS: 5 } });

  it(`an all-documents job whose task would pass ${MAX_TASK_BYTES / 1024} KiB is refused before anything is written or queued`, async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const spec = parseJobText(`${base}packing: all-documents\n`.replace("name: lim", "name: lim-task"), "lim.yaml");
    // 3,000 documents with 100-character keys: about 330 KiB of URIs in one message.
    const documents = Array.from({ length: 3000 }, (_, i) => {
      const key = `inputs/${String(i).padStart(6, "0")}/${"d".repeat(80)}.md`;
      return { source: key, uri: s3Uri(loop.stack.bucket, key) };
    });
    const depth = async () =>
      Number((await loop.stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: loop.stack.queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }))).Attributes!.ApproximateNumberOfMessages);
    const before = await depth();
    const err = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents, outputSchema: null, jobId: "lim-task-1" },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("item all-documents: its task message is over SQS's 256 KiB (too many documents in one item); nothing was queued");
    expect(await depth()).toBe(before);
    expect(await store.exists(keys.job("lim-task-1"))).toBe(false);
  });

  it(`a job of more than ${MAX_ITEMS_PER_JOB.toLocaleString("en-US")} items is refused before anything is written or queued`, async () => {
    const store = new ObjectStore(loop.stack.s3, loop.stack.bucket);
    const spec = parseJobText(base.replace("name: lim", "name: lim-items"), "lim.yaml");
    const documents = Array.from({ length: MAX_ITEMS_PER_JOB + 1 }, (_, i) => ({ source: `d${i}.md`, uri: s3Uri(loop.stack.bucket, `inputs/x/d${i}.md`) }));
    const err = await submitJob(
      { store, sqs: loop.stack.sqs, queueUrl: loop.stack.queueUrl, maxReceives: loop.stack.maxReceives },
      { spec, model: getModel(loadCatalog(), "qwen3-max"), documents, outputSchema: null, jobId: "lim-items-1" },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe("job 'lim-items': 50001 items, over the 50,000 a job may hold; split its documents across jobs (or pack small ones: packing: packed); nothing was queued");
    expect(await store.exists(keys.job("lim-items-1"))).toBe(false);
  });
});
