// `longdoc doctor` and `--stage`: a deployer's set-up checked before the first job. No AWS here:
// a machine with nothing configured, the Qwen simulator standing in for Model Studio, and a
// fauxqs stack standing in for a deployed one (reached through the SDK's own AWS_ENDPOINT_URL).
// Not covered offline: real credential sources (SSO, roles), `sst secret list` itself (faked
// below by its output's names), and a real Model Studio region answering 401 to another's key.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longdoc as cli, ROOT } from "./helpers/cli.ts";
import { runDoctor, secretNamesOf, SECRET_NAMES, checkNode, type DoctorReport } from "../cli/doctor.ts";
import { knownStages, readStackOutputs } from "../cli/stages.ts";
import { readStackCoordinates } from "../cli/stack.ts";
import { startLocalStack, type LocalStack } from "../shared/local/stack.ts";
import { startSimulator, type Simulator } from "../shared/sim/index.ts";

/** An environment with nothing of the user's: no AWS variables, no ~/.aws, no instance role lookups. */
const bare = (home: string): Record<string, string | undefined> => ({
  HOME: home,
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_PROFILE: undefined,
  AWS_REGION: undefined,
  AWS_DEFAULT_REGION: undefined,
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_ENDPOINT_URL: undefined,
  AWS_CONFIG_FILE: undefined,
  AWS_SHARED_CREDENTIALS_FILE: undefined,
  LONGDOC_BUCKET: undefined,
  LONGDOC_QUEUE_URL: undefined,
  LONGDOC_REGION: undefined,
  DASHSCOPE_API_KEY: "",
  QWEN_BASE_URL: "",
});
const byName = (r: DoctorReport) => Object.fromEntries(r.checks.map((c) => [c.name, c]));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "longdoc-doctor-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("stages", () => {
  it("keeps each deployed stage's outputs, picks the only one, and asks which when there are several", async () => {
    const cwd = path.join(dir, "stages");
    await mkdir(path.join(cwd, ".sst"), { recursive: true });
    const outputs = (stage: string) => ({ stage, bucket: `runs-${stage}`, queue: `https://sqs.eu-west-1.amazonaws.com/1/tasks-${stage}` });
    await writeFile(path.join(cwd, ".sst", "outputs.json"), JSON.stringify(outputs("dev")));
    expect(readStackCoordinates({}, cwd)).toMatchObject({ bucket: "runs-dev", stage: "dev" });
    // The last deploy of a second stage overwrites outputs.json; the first stage is still known.
    await writeFile(path.join(cwd, ".sst", "outputs.json"), JSON.stringify(outputs("prod")));
    expect(knownStages(cwd)).toEqual(["dev", "prod"]);
    expect(await readdir(path.join(cwd, ".sst", "stages"))).toEqual(["dev.json"]);
    expect(() => readStackCoordinates({}, cwd)).toThrow(/2 stages were deployed from this folder \(dev, prod\): say which with --stage prod/);
    expect(await readdir(path.join(cwd, ".sst", "stages"))).toEqual(["dev.json", "prod.json"]);
    expect(readStackCoordinates({}, cwd, "dev")).toMatchObject({ bucket: "runs-dev", from: { bucket: ".sst/stages/dev.json 'bucket'" } });
    expect(readStackCoordinates({}, cwd, "prod")).toMatchObject({ bucket: "runs-prod", from: { bucket: ".sst/outputs.json 'bucket'" } });
    expect(() => readStackOutputs(cwd, "qa")).toThrow(/no outputs for stage 'qa' \(stages known here: dev, prod\); deploy it with 'npx sst deploy --stage qa'/);
    expect(() => readStackOutputs(cwd, "../x")).toThrow(/not a stage name/);
    // Bucket and queue given outright need no stage.
    expect(readStackCoordinates({ LONGDOC_BUCKET: "given", LONGDOC_QUEUE_URL: "https://sqs.eu-west-1.amazonaws.com/1/q" }, cwd)).toMatchObject({ bucket: "given" });

    const status = await cli(["status", "some-job-20260101-000000-abcd", "--deployed"], {}, 60_000, cwd);
    expect(status.code).toBe(2);
    expect(status.stderr).toContain("longdoc: 2 stages were deployed from this folder (dev, prod): say which with --stage prod");
  }, 60_000);
});

describe("longdoc doctor", () => {
  let sim: Simulator;
  let keyed: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
    keyed = await startSimulator({ port: 0, apiKey: "sk-right" });
  });
  afterAll(async () => {
    await sim?.stop();
    await keyed?.stop();
  });

  it("on a machine with nothing configured: every missing piece on its own line with what to do, exit 1", async () => {
    const home = path.join(dir, "home");
    const cwd = path.join(dir, "empty");
    await mkdir(home, { recursive: true });
    await mkdir(cwd, { recursive: true });
    const r = await cli(["doctor", "--deployed"], bare(home), 60_000, cwd);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`ok    node: Node ${process.versions.node} (longdoc needs 22.13 or later)`);
    expect(r.stdout).toMatch(/^--    model key: DASHSCOPE_API_KEY is not set here/m);
    expect(r.stdout).toMatch(/^FAIL  stack outputs: no deployed stack: the runs bucket and the task queue URL unknown/m);
    expect(r.stdout).toMatch(/^FAIL  aws credentials: none found: .*\n      fix: set AWS_PROFILE/m);
    expect(r.stdout).toMatch(/^FAIL  aws region: no region set\n      fix: set AWS_REGION/m);
    expect(r.stdout).toMatch(/^--    secrets: not checked: reading the stage's secrets \(DashscopeApiKey, WebhookSecret\) needs AWS credentials/m);
    expect(lines.at(-1)).toBe("3 problem(s) to fix before the first job");
    // --json: the same checks as one object.
    const j = await cli(["doctor", "--deployed", "--json"], bare(home), 60_000, cwd);
    const report = JSON.parse(j.stdout) as DoctorReport;
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c) => c.ok === false).map((c) => c.name)).toEqual(["stack outputs", "aws credentials", "aws region"]);
  }, 60_000);

  it("locally: the key answers on its endpoint (exit 0), or the endpoint refuses it and the fix names the region (exit 1)", async () => {
    const home = path.join(dir, "home");
    const ok = await cli(["doctor"], { ...bare(home), DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^ok    model key: the key is accepted on http:\/\/127\.0\.0\.1:\d+\/.* and qwen3-max answers there$/m);
    expect(ok.stdout.trimEnd().split("\n").at(-1)).toBe("ready for a first job");
    const bad = await cli(["doctor"], { ...bare(home), DASHSCOPE_API_KEY: "sk-wrong", QWEN_BASE_URL: keyed.baseURL });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^FAIL  model key: .*\n      fix: Model Studio keys belong to one region: set QWEN_BASE_URL to the endpoint of the key's region/m);
    expect(bad.stdout).not.toContain("sk-wrong");
    // Without a key, a local run uses the simulator: nothing to fix.
    const none = await cli(["doctor"], bare(home));
    expect(none.code).toBe(0);
  }, 60_000);

  describe("--deployed, against a stack standing in for AWS", () => {
    let stack: LocalStack;
    let cwd: string;
    let env: Record<string, string | undefined>;
    beforeAll(async () => {
      stack = await startLocalStack();
      cwd = path.join(dir, "deployed");
      await mkdir(path.join(cwd, ".sst"), { recursive: true });
      await writeFile(path.join(cwd, ".sst", "outputs.json"), JSON.stringify({ stage: "dev", bucket: stack.bucket, queue: stack.queueUrl }));
      env = { ...bare(path.join(dir, "home")), AWS_ENDPOINT_URL: stack.endpoint, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "local", AWS_SECRET_ACCESS_KEY: "local", DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: sim.baseURL };
      // The AWS SDK reads process.env itself, as it does under the CLI: set for these tests, restored after.
      saved = { ...process.env };
      setEnv(env);
    }, 60_000);
    let saved: NodeJS.ProcessEnv;
    const setEnv = (e: Record<string, string | undefined>) => {
      for (const [k, v] of Object.entries(e)) v === undefined ? delete process.env[k] : (process.env[k] = v);
    };
    afterAll(async () => {
      if (saved) for (const k of Object.keys(env)) saved[k] === undefined ? delete process.env[k] : (process.env[k] = saved[k]);
      await stack?.stop();
    });

    it("passes when credentials, region, outputs, the stack and both secrets are there; names the stage's missing secret with the command to set it", async () => {
      const asked: (string | null)[] = [];
      const full = await runDoctor({ env, cwd, deployed: true, listSecrets: async (stage) => (asked.push(stage), ["DashscopeApiKey", "WebhookSecret", "Other"]) });
      expect(full.checks.filter((c) => c.ok !== true)).toEqual([]);
      expect(full.ok).toBe(true);
      expect(asked).toEqual(["dev"]);
      expect(byName(full)["stack outputs"]!.detail).toContain(`bucket ${stack.bucket} (.sst/outputs.json 'bucket')`);

      const missing = await runDoctor({ env, cwd, deployed: true, listSecrets: async () => ["DashscopeApiKey"] });
      expect(missing.ok).toBe(false);
      expect(byName(missing).secrets).toEqual({ name: "secrets", ok: false, detail: "not set for stage dev: WebhookSecret", fix: "npx sst secret set WebhookSecret <value> --stage dev" });

      const failing = await runDoctor({ env, cwd, deployed: true, listSecrets: async () => { throw new Error("sst: not logged in\nmore"); } });
      expect(byName(failing).secrets).toMatchObject({ ok: false, detail: "could not list them: sst: not logged in" });
    }, 60_000);

    it("fails a stack that does not answer, and a region that is not the stack's", async () => {
      const gone = await runDoctor({ env: { ...env, LONGDOC_BUCKET: "no-such-bucket-here" }, cwd, deployed: true, listSecrets: async () => SECRET_NAMES });
      expect(byName(gone)["stack reachable"]).toMatchObject({ ok: false });
      const elsewhere = await runDoctor({ env: { ...env, LONGDOC_QUEUE_URL: "https://sqs.eu-west-1.amazonaws.com/123/tasks" }, cwd, deployed: true, listSecrets: async () => SECRET_NAMES });
      expect(byName(elsewhere)["aws region"]).toMatchObject({ ok: false, detail: "us-east-1 is set, but the stack's queue is in eu-west-1", fix: "set AWS_REGION=eu-west-1, or pass --stage for the stage deployed in us-east-1" });
    }, 60_000);
  });

  it("knows the secrets the infrastructure declares, reads only their names from sst's list, and the Node floor", async () => {
    const infra = path.join(ROOT, "infra");
    const declared = new Set<string>();
    for (const f of await readdir(infra)) {
      for (const m of (await readFile(path.join(infra, f), "utf8")).matchAll(/new sst\.Secret\("([A-Za-z0-9]+)"/g)) declared.add(m[1]!);
    }
    expect([...declared].sort()).toEqual([...SECRET_NAMES].sort());
    expect(secretNamesOf("# longdoc / dev\nDashscopeApiKey=sk-abc=def\nWebhookSecret=x\n")).toEqual(["DashscopeApiKey", "WebhookSecret"]);
    expect(checkNode("20.20.2")).toMatchObject({ ok: false, fix: "install Node 22.13 or later" });
    expect(checkNode("22.13.0").ok).toBe(true);
  });
});
