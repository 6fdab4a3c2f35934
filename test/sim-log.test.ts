// `longdoc sim`'s request log: one line per request when it ends, whatever the clients before it did.
import { spawn } from "node:child_process";
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";

const script = `
import { Command } from "commander";
import { registerSim } from "./cli/commands/sim.ts";
const program = new Command().name("longdoc").exitOverride();
registerSim(program);
await program.parseAsync(JSON.parse(process.env.SIM_ARGS), { from: "user" });
`;

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

async function startSim(args: string[]) {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("..", import.meta.url),
    env: { ...process.env, SIM_ARGS: JSON.stringify(["sim", "--port", "0", ...args]) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const baseURL = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed; stderr: ${stderr}`)), 20_000);
    child.stdout!.on("data", () => {
      const m = /QWEN_BASE_URL=(\S+)/.exec(stdout);
      if (m) (clearTimeout(timer), resolve(m[1]!));
    });
  });
  const lines = () => stderr.split("\n").filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
  /** Waits for n log lines, then a little longer to see that no extra line follows. */
  const logged = async (n: number) => {
    const until = Date.now() + 15_000;
    while (lines().length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 400));
    return lines();
  };
  return { url: new URL(`${baseURL}/chat/completions`), logged };
}

const BODY = JSON.stringify({
  model: "qwen3-max",
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Write a short summary of the quarterly report, please." }],
  max_completion_tokens: 200,
});

type Hangup = { when: "latency"; afterMs: number } | { when: "first-content" } | { when: "after-done" } | { when: "never" };

/**
 * One streaming request over its own connection. Returns what arrived: the text, and whether
 * `[DONE]` did. The client destroys its socket at the chosen moment.
 */
function chat(url: URL, hangup: Hangup): Promise<{ text: string; done: boolean }> {
  return new Promise((resolve, reject) => {
    let text = "";
    const req = request(url, { method: "POST", agent: false, headers: { authorization: "Bearer sk-x", "content-type": "application/json" } }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
        if (hangup.when === "first-content" && /"content":"[^"]+"/.test(text)) req.destroy();
        if (hangup.when === "after-done" && text.includes("data: [DONE]")) req.destroy();
      });
      res.on("end", () => resolve({ text, done: text.includes("data: [DONE]") }));
      res.on("close", () => resolve({ text, done: text.includes("data: [DONE]") }));
    });
    req.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" || req.destroyed ? resolve({ text, done: text.includes("data: [DONE]") }) : reject(e)));
    req.end(BODY);
    if (hangup.when === "latency") setTimeout(() => req.destroy(), hangup.afterMs);
  });
}

const seqOf = (line: string) => Number(/ #(\d+) /.exec(line)?.[1]);

describe("longdoc sim request log", () => {
  it("logs every request once, in order, after a client hangs up during the latency (instant decoding)", async () => {
    const sim = await startSim(["--latency-ms", "300"]);
    const cut = await chat(sim.url, { when: "latency", afterMs: 100 });
    expect(cut.text).toBe("");
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await chat(sim.url, { when: "never" }));
    expect(after.every((r) => r.done)).toBe(true);
    const closedAfterDone = await chat(sim.url, { when: "after-done" });
    expect(closedAfterDone.done).toBe(true);
    after.push(await chat(sim.url, { when: "never" }));

    const lines = await sim.logged(6);
    expect(lines).toHaveLength(6);
    expect(lines.map(seqOf)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines[0]).toMatch(/ - qwen3-max stream .* client closed streamed=0$/);
    for (const l of lines.slice(1)) expect(l).toMatch(/ 200 qwen3-max stream .* ok (stop|length)$/);
  });

  it("logs a hang-up during the latency, mid-stream and after the last chunk, then the requests after them (paced decoding)", async () => {
    const sim = await startSim(["--latency-ms", "300", "--decode-tps", "40"]);
    const duringLatency = await chat(sim.url, { when: "latency", afterMs: 100 });
    const midStream = await chat(sim.url, { when: "first-content" });
    const afterLast = await chat(sim.url, { when: "after-done" });
    const more = [await chat(sim.url, { when: "never" }), await chat(sim.url, { when: "never" })];
    expect(duringLatency.text).toBe("");
    expect(midStream.done).toBe(false);
    expect(afterLast.done).toBe(true);
    expect(more.every((r) => r.done)).toBe(true);

    const lines = await sim.logged(5);
    expect(lines).toHaveLength(5);
    expect(lines.map(seqOf)).toEqual([1, 2, 3, 4, 5]);
    expect(lines[0]).toMatch(/ - qwen3-max .* client closed streamed=0$/);
    // cut after its first answer delta: some tokens were streamed, fewer than a whole answer
    const streamed = Number(/client closed streamed=(\d+)$/.exec(lines[1]!)?.[1]);
    const whole = Number(/completion=(\d+)/.exec(lines[2]!)?.[1]);
    expect(lines[1]).toMatch(/ 200 qwen3-max stream .* client closed streamed=\d+$/);
    expect(streamed).toBeGreaterThan(0);
    expect(streamed).toBeLessThan(whole);
    for (const l of lines.slice(2)) expect(l).toMatch(/ 200 qwen3-max stream .* ok (stop|length)$/);
  });
});
