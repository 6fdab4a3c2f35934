// Deploy-time checks of scheduled and upload jobs (infra/jobs.ts) and the schedules' retries
// and dead-letter queue (infra/schedules.ts), run against a small recording fake of SST's
// globals (the full fake, and why, is in test/infra.test.ts). The fake takes only the option
// names SST v4.17's components take (anomalyco/sst platform/src/components/aws/cron-v2.ts, queue.ts).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deploy } from "../infra/index.ts";
import { readJobs, scheduleProblem } from "../infra/jobs.ts";
import { SCHEDULE_DLQ, SCHEDULE_RETRIES } from "../infra/schedules.ts";
import { deployment } from "../shared/settings.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
type Args = Record<string, any>;
interface Rec {
  type: string;
  name: string;
  args: Args;
  self: any;
}

const CRON_KEYS = ["job", "function", "task", "event", "schedule", "timezone", "enabled", "retries", "dlq", "transform"];
const QUEUE_KEYS = ["fifo", "delay", "visibilityTimeout", "dlq", "transform"];

function installFakeSst() {
  const recs: Rec[] = [];
  const only = (what: string, args: Args, allowed: string[]) => {
    for (const k of Object.keys(args)) if (!allowed.includes(k)) throw new Error(`fake sst: ${what} has no option '${k}' in SST v4`);
  };
  const record = (type: string, name: string, args: Args, self: any) => {
    if (recs.some((r) => r.type === type && r.name === name)) throw new Error(`fake sst: two ${type} components named ${name}`);
    recs.push({ type, name, args, self });
  };
  const named = (type: string) =>
    class {
      name: string;
      arn: string;
      url: string;
      notifications?: Args;
      constructor(name: string, args: Args = {}) {
        if (type === "Queue") only(`Queue ${name}`, args, QUEUE_KEYS);
        this.name = `fake-${name}`;
        this.arn = `arn:fake:${type}:${name}`;
        this.url = `https://fake/${name}`;
        record(type, name, args, this);
      }
      subscribe() {
        return {};
      }
      notify(args: Args) {
        this.notifications = args;
        return {};
      }
    };
  class CronV2 {
    constructor(name: string, args: Args) {
      only(`CronV2 ${name}`, args, CRON_KEYS);
      if (args.retries !== undefined && !(Number.isInteger(args.retries) && args.retries >= 0 && args.retries <= 185)) {
        throw new Error(`fake sst: CronV2 ${name} retries ${args.retries}: EventBridge Scheduler takes 0-185`);
      }
      record("CronV2", name, args, this);
    }
  }
  class Secret {
    constructor(name: string) {
      record("Secret", name, {}, this);
    }
  }
  (globalThis as any).aws = { lambda: { FunctionEventInvokeConfig: named("FunctionEventInvokeConfig") }, cloudwatch: { Dashboard: named("Dashboard"), MetricAlarm: named("MetricAlarm") } };
  (globalThis as any).sst = {
    Secret,
    aws: { Bucket: named("Bucket"), Queue: named("Queue"), Function: named("Function"), Dynamo: named("Dynamo"), SnsTopic: named("SnsTopic"), CronV2 },
  };
  const get = (type: string, name: string) => {
    const r = recs.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} ${name}; made ${recs.map((x) => `${x.type} ${x.name}`).join(", ")}`);
    return r;
  };
  return { recs, get, all: (type: string) => recs.filter((r) => r.type === type) };
}

let fake: ReturnType<typeof installFakeSst>;
const dirs: string[] = [];
const jobsDir = (files: Record<string, string>) => {
  const dir = mkdtempSync(path.join(tmpdir(), "longdoc-ops-deploy-"));
  dirs.push(dir);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
};
const job = (name: string, extra = "") => `name: ${name}\ndocuments:\n  - s3: s3://${name}-docs/in/\nprompt: Summarise.\n${extra}`;
const refusal = (dir: string): string => {
  try {
    readJobs(dir);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("readJobs accepted the jobs");
};

beforeEach(() => {
  fake = installFakeSst();
});
afterEach(() => {
  delete (globalThis as any).sst;
  delete (globalThis as any).aws;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("deploy-time checks of scheduled and upload jobs", () => {
  it("refuses a scheduled job the validator refuses, as file:line: field: message, every problem of every file at once", () => {
    const dir = jobsDir({
      "nightly.yaml": job("nightly", "modle: qwen3-max\nschedule: rate(1 day)\n"),
      "inbox-json.yaml": job("inbox-json", "thinking: { enabled: true }\noutput: { format: json, schema: { type: object } }\ntrigger: upload\n"),
    });
    const lines = refusal(dir).split("\n");
    expect(lines).toEqual([
      `${path.join(dir, "inbox-json.yaml")}:5: thinking.enabled: the API refuses JSON output with thinking on; set thinking.enabled: false or output.format: text`,
      `${path.join(dir, "nightly.yaml")}:5: modle: unknown field (did you mean 'model'?)`,
    ]);
    // Nothing was created: deploy reads the jobs first.
    expect(() => deploy({ jobsDir: dir })).toThrow(/unknown field/);
    expect(fake.recs).toHaveLength(0);
  });

  it("checks the spec only, not documents: s3: sources are listed when a run starts", () => {
    const dir = jobsDir({ "nightly.yaml": job("nightly", "schedule: rate(1 day)\n") });
    expect(readJobs(dir).map((j) => j.name)).toEqual(["nightly"]);
  });

  it("refuses a wrong trigger: or schedule: with the field's line", () => {
    const dir = jobsDir({
      "a.yaml": job("aaa", "trigger: uploads\n").replace("name: aaa", "name: a"),
      "b.yaml": job("bbb", "schedule: cron(0 6 * * MON)\n").replace("name: bbb", "name: b"),
      "c.yaml": job("ccc", "schedule: cron(0 6 3 * MON *)\n").replace("name: ccc", "name: c"),
      "d.yaml": job("ddd", "schedule: rate(1 days)\n").replace("name: ddd", "name: d"),
    });
    expect(refusal(dir).split("\n")).toEqual([
      `${path.join(dir, "a.yaml")}:5: trigger: must be one of "upload"`,
      `${path.join(dir, "b.yaml")}:5: schedule: cron takes six fields (minutes hours day-of-month month day-of-week year), got 5: '0 6 * * MON'; e.g. cron(0 6 3 * ? *) is 06:00 UTC on the 3rd of each month`,
      `${path.join(dir, "c.yaml")}:5: schedule: in cron, exactly one of day-of-month (3rd field, '3') and day-of-week (5th field, 'MON') must be '?'`,
      `${path.join(dir, "d.yaml")}:5: schedule: rate(1 days): use 'day' (EventBridge takes the singular only for 1)`,
    ]);
  });

  it("leaves jobs without a schedule or trigger to `longdoc submit`, which validates them then", () => {
    const dir = jobsDir({ "adhoc.yaml": job("adhoc", "modle: typo\n"), "nightly.yaml": job("nightly", "schedule: rate(1 day)\n") });
    expect(readJobs(dir).map((j) => j.name)).toEqual(["adhoc", "nightly"]);
  });

  it("refuses two jobs whose names give the same resource name, naming both files", () => {
    const dir = jobsDir({
      "q1-report.yaml": job("q1-report", "schedule: rate(1 day)\n"),
      "q-1-report.yaml": job("q-1-report", "trigger: upload\n"),
    });
    expect(refusal(dir)).toBe(
      `${path.join(dir, "q-1-report.yaml")} and ${path.join(dir, "q1-report.yaml")}: job names 'q-1-report' and 'q1-report' give the same resource name Q1Report (ScheduleQ1Report, InboxQ1Report); rename one`,
    );
  });

  it("does not count a clash with a job that wires nothing", () => {
    const dir = jobsDir({ "q1-report.yaml": job("q1-report", "schedule: rate(1 day)\n"), "q-1-report.yaml": job("q-1-report") });
    expect(readJobs(dir)).toHaveLength(2);
  });

  it("refuses an output.schemaFile the deployed submit function would not carry, or that is missing or not a schema", () => {
    const json = (file: string) => `thinking: { enabled: false }\noutput: { format: json, schemaFile: ${file} }\nschedule: rate(1 day)\n`;
    const dir = jobsDir({
      "inside.yaml": job("inside", json("schemas/ok.json")),
      "outside.yaml": job("outside", json("../elsewhere.json")),
      "missing.yaml": job("missing", json("schemas/none.json")),
      "broken.yaml": job("broken", json("schemas/broken.json")),
      "schemas/ok.json": JSON.stringify({ type: "object" }),
      "schemas/broken.json": JSON.stringify({ type: "objekt" }),
    });
    const lines = refusal(dir).split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^${path.join(dir, "broken.yaml")}:6: output\\.schemaFile: schemas/broken\\.json is not a usable JSON Schema: `));
    expect(lines[1]).toBe(`${path.join(dir, "missing.yaml")}:6: output.schemaFile: schemas/none.json not found (looked for ${path.join(dir, "schemas/none.json")})`);
    expect(lines[2]).toBe(
      `${path.join(dir, "outside.yaml")}:6: output.schemaFile: ../elsewhere.json is outside ${dir}/, and the deployed submit function carries only ${dir}/ (copy the schema into it, e.g. ${dir}/schemas/)`,
    );
  });

  it.each([
    ["cron(0 6 3 * ? *)", null],
    ["cron(0 6 ? * MON-FRI *)", null],
    ["cron(0/15 * * * ? *)", null],
    ["rate(1 day)", null],
    ["rate(6 hours)", null],
    ["rate(0 minutes)", /at least 1/],
    ["rate(1.5 hours)", /whole number/],
    ["rate(2 weeks)", /minutes, hours or days/],
    ["cron(0 6 * * ? *)", null],
    ["cron(0 6 ? * ? *)", /exactly one/],
  ])("schedule %s", (expression, problem) => {
    const found = scheduleProblem(expression);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toMatch(problem);
  });
});

describe("the example jobs, deployed", () => {
  const examples = () => {
    const dir = jobsDir({});
    for (const f of ["monthly-statements.yaml", "contract-review.yaml"]) copyFileSync(path.join(ROOT, "jobs/examples", f), path.join(dir, f));
    return dir;
  };

  it("refuses the monthly job copied without its schema, naming output.schemaFile", () => {
    expect(refusal(examples())).toMatch(/monthly-statements\.yaml:\d+: output\.schemaFile: schemas\/statement-summary\.json not found/);
  });

  it("schedules monthly-statements with retries and a dead-letter queue, and wires inbox/contract-review/ uploads", () => {
    const dir = examples();
    mkdirSync(path.join(dir, "schemas"));
    copyFileSync(path.join(ROOT, "jobs/examples/schemas/statement-summary.json"), path.join(dir, "schemas/statement-summary.json"));
    const out = deploy({ jobsDir: dir });

    const submit = fake.get("Function", "Submit").self;
    const dlq = fake.get("Queue", SCHEDULE_DLQ);
    // (BatchPoll, the batch poller every stack has: test/infra.test.ts)
    expect(fake.all("CronV2").filter((c) => c.name !== "BatchPoll").map((c) => [c.name, c.args])).toEqual([
      [
        "ScheduleMonthlyStatements",
        {
          function: submit,
          schedule: "cron(0 6 3 * ? *)",
          event: { job: "monthly-statements", scheduledTime: "<aws.scheduler.scheduled-time>" },
          retries: SCHEDULE_RETRIES,
          dlq: dlq.self.arn,
        },
      ],
    ]);
    expect(SCHEDULE_RETRIES).toBeGreaterThan(0);
    // A standard queue (Scheduler takes no FIFO DLQ), kept as long as the tasks' dead letters.
    expect(dlq.args).toEqual({ transform: { queue: { messageRetentionSeconds: deployment.dlqRetentionS } } });
    expect(out.schedules).toEqual([
      { job: "monthly-statements", component: "ScheduleMonthlyStatements", schedule: "cron(0 6 3 * ? *)", retries: SCHEDULE_RETRIES, deadLetterQueue: dlq.self.url },
    ]);
    expect(fake.get("Bucket", "Runs").self.notifications.notifications).toEqual([
      { name: "InboxContractReview", function: submit.arn, events: ["s3:ObjectCreated:*"], filterPrefix: "inbox/contract-review/" },
    ]);
    expect(out.uploads).toEqual([{ job: "contract-review", prefix: "inbox/contract-review/" }]);
  });

  it("makes no schedule dead-letter queue when no job has a schedule", () => {
    deploy({ jobsDir: jobsDir({ "uploads.yaml": job("uploads", "trigger: upload\n") }) });
    expect(fake.all("Queue").map((q) => q.name)).not.toContain(SCHEDULE_DLQ);
  });
});
