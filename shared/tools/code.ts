/**
 * The code tool's sandbox: JavaScript the model writes runs in QuickJS compiled to WebAssembly
 * (`quickjs-emscripten`), a separate interpreter with its own heap. The context has only the
 * language's built-ins plus a `console` that writes into a buffer: no `require`, `process`,
 * `fetch`, module loader, timers, filesystem or network exist inside it. Memory, stack, time and
 * output are capped; a script that passes a cap is stopped and reported as an error string,
 * which goes back to the model like any other output.
 *
 * Two memory fences: QuickJS's own heap limit (objects, arrays), and the WebAssembly memory of a
 * fresh interpreter per run, capped at the heap limit plus headroom, because QuickJS allocates
 * large strings outside its limit (measured: `"x".repeat(1<<20)` in a loop grew a 16 MiB-limited
 * runtime to 2 GB) and a single native call is not interrupted by the time check.
 *
 * The time limit is checked by QuickJS's interrupt handler, which runs every few thousand
 * bytecode steps: a script that loops over heavy native calls (and catches the out-of-memory
 * errors they raise) can overrun it by seconds. Stopping such a script at once would need a
 * worker thread to terminate; the wall-clock cap of the whole item still holds.
 */
import { newQuickJSWASMModuleFromVariant, newVariant, RELEASE_SYNC, shouldInterruptAfterDeadline, type QuickJSContext, type QuickJSHandle } from "quickjs-emscripten";

export interface CodeLimits {
  /** Wall-clock time for one script; the interrupt handler stops it after this. */
  timeoutMs: number;
  /** Heap of the QuickJS runtime (bytes). */
  memoryBytes: number;
  /** Stack of the QuickJS runtime (bytes): deep recursion fails instead of crashing the host. */
  stackBytes: number;
  /** Characters of console output and of the final value kept; the rest is cut and marked. */
  maxOutputChars: number;
}

export const DEFAULT_CODE_LIMITS: CodeLimits = Object.freeze({
  timeoutMs: 2_000,
  memoryBytes: 32 * 1024 * 1024,
  stackBytes: 256 * 1024,
  maxOutputChars: 16_000,
});

export interface CodeRun {
  ok: boolean;
  /** What console.log/info/warn/error printed, one line per call. */
  stdout: string;
  /** The script's completion value as JSON (or String() for what JSON cannot show); null when it failed. */
  value: string | null;
  /** Why the script failed: its exception, or the limit that stopped it. */
  error: string | null;
  /** Whether stdout or the value was cut at maxOutputChars. */
  truncated: boolean;
  durationMs: number;
}

/** The name the model calls; the API refuses a tool named `search` (docs/qwen-api.md §3). */
export const CODE_TOOL_NAME = "run_javascript";

/** The tool offered to the model, in the OpenAI `tools` format. */
export const CODE_TOOL = Object.freeze({
  type: "function" as const,
  function: {
    name: CODE_TOOL_NAME,
    description:
      "Runs JavaScript (ES2023) in a sandbox with no I/O, for exact arithmetic over figures taken from the documents: ratios, growth rates, NPV, reconciliations. " +
      "console.log prints; the value of the last expression is returned. No network, files, modules or timers; Date.now() is fixed at 2000-01-01T00:00:00Z and Math.random() is seeded, so every run gives the same result; time and memory are limited.",
    parameters: {
      type: "object",
      properties: { code: { type: "string", description: "The JavaScript source to run" } },
      required: ["code"],
    },
  },
});

/** Runs one script under `limits`. Never throws for anything the script does. */
export async function runCode(code: string, limits: CodeLimits = DEFAULT_CODE_LIMITS): Promise<CodeRun> {
  const started = Date.now();
  const quickjs = await newQuickJSWASMModuleFromVariant(
    newVariant(RELEASE_SYNC, {
      wasmMemory: new WasmMemory({ initial: INITIAL_PAGES, maximum: wasmPages(limits.memoryBytes) }),
      // Emscripten prints its own aborts (an assertion while freeing a runtime a script left in a
      // bad state) to the host's stderr; the run's outcome is reported through CodeRun instead.
      emscriptenModule: { print: () => {}, printErr: () => {} } as never,
    }),
  );
  const runtime = quickjs.newRuntime();
  runtime.setMemoryLimit(limits.memoryBytes);
  runtime.setMaxStackSize(limits.stackBytes);
  const deadline = started + limits.timeoutMs;
  const timeUp = shouldInterruptAfterDeadline(deadline);
  runtime.setInterruptHandler(timeUp);
  const vm = runtime.newContext();
  const out = new OutputBuffer(limits.maxOutputChars);
  try {
    installConsole(vm, out);
    const prelude = vm.evalCode(FIXED_CLOCK_AND_RANDOM, "prelude.js");
    if (prelude.error) {
      prelude.error.dispose();
      throw new Error("the sandbox's prelude failed");
    }
    prelude.value.dispose();
    const result = vm.evalCode(code, "tool.js");
    if (result.error) {
      const err = describeError(vm, result.error);
      result.error.dispose();
      // The error says which limit stopped the script: QuickJS raises "out of memory", or "interrupted" from the time check.
      const oom = /out of memory/i.test(err) ? `stopped: the script passed its ${Math.round(limits.memoryBytes / 1048576)} MiB memory limit (${err})` : null;
      const stopped = /interrupted/i.test(err) || Date.now() >= deadline ? `stopped: the script ran past its ${limits.timeoutMs} ms time limit` : null;
      return { ok: false, stdout: out.text(), value: null, error: oom ?? stopped ?? err, truncated: out.truncated, durationMs: Date.now() - started };
    }
    const settled = settle(vm, result.value);
    if ("error" in settled) {
      return { ok: false, stdout: out.text(), value: null, error: settled.error, truncated: out.truncated, durationMs: Date.now() - started };
    }
    const raw = settled.value;
    const value = raw.length > limits.maxOutputChars ? `${raw.slice(0, limits.maxOutputChars)}…` : raw;
    return { ok: true, stdout: out.text(), value, error: null, truncated: out.truncated || value !== raw, durationMs: Date.now() - started };
  } catch (e) {
    // The interpreter itself gave up (e.g. memory exhausted while building the error).
    return { ok: false, stdout: out.text(), value: null, error: `stopped: ${e instanceof Error ? e.message : String(e)}`, truncated: out.truncated, durationMs: Date.now() - started };
  } finally {
    // The interpreter is used once and dropped: a failure to free it (an assertion in QuickJS
    // after an out-of-memory stop) cannot affect the next run.
    try {
      vm.dispose();
      runtime.dispose();
    } catch {
      /* the whole WebAssembly instance is garbage now */
    }
  }
}

/** `Date.now()`, `new Date()` and `Date()` without arguments: 2000-01-01T00:00:00Z in every run. */
export const SANDBOX_NOW_MS = Date.UTC(2000, 0, 1);
/** The seed of the sandbox's Math.random (xorshift32): the same sequence in every run. */
export const SANDBOX_RANDOM_SEED = 0x2545f491;

/**
 * Run before the script: the clock and Math.random made the same in every run, so a script's
 * result depends only on its code (as the tool's description promises), never on when it ran.
 * Dates built from explicit arguments behave as usual.
 */
const FIXED_CLOCK_AND_RANDOM = `(() => {
  const NOW = ${SANDBOX_NOW_MS};
  let state = ${SANDBOX_RANDOM_SEED};
  const random = () => {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  Object.defineProperty(Math, "random", { value: random, writable: false, configurable: false });
  const RealDate = Date;
  function FixedDate(...args) {
    if (!new.target) return new RealDate(NOW).toString();
    return args.length === 0 ? new RealDate(NOW) : new RealDate(...args);
  }
  FixedDate.prototype = RealDate.prototype;
  Object.defineProperty(RealDate.prototype, "constructor", { value: FixedDate, writable: true, configurable: true });
  FixedDate.now = () => NOW;
  FixedDate.parse = RealDate.parse;
  FixedDate.UTC = RealDate.UTC;
  Object.defineProperty(globalThis, "Date", { value: FixedDate, writable: true, configurable: true, enumerable: false });
})();`;

/** The runtime's WebAssembly.Memory constructor (the project's TS libs do not declare WebAssembly values). */
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => never } }).WebAssembly.Memory;

/** 64 KiB pages: the interpreter's own code and data need about 16 MiB before the script's heap. */
const INITIAL_PAGES = 256;
const wasmPages = (heapBytes: number) => INITIAL_PAGES + Math.ceil(heapBytes / 65536);

/** The completion value, a promise's outcome when it is one (e.g. `import("fs")`, which has no loader to find). */
function settle(vm: QuickJSContext, h: QuickJSHandle): { value: string } | { error: string } {
  try {
    if (vm.typeof(h) !== "object") return { value: showValue(vm, h) };
    vm.runtime.executePendingJobs();
    const state = vm.getPromiseState(h);
    if (state.type === "pending") return { error: "the script's promise never settled (the sandbox has no timers or I/O)" };
    if (state.type === "rejected") {
      const e = describeError(vm, state.error);
      state.error.dispose();
      return { error: e };
    }
    if (state.notAPromise) return { value: showValue(vm, h) };
    const v = showValue(vm, state.value);
    state.value.dispose();
    return { value: v };
  } finally {
    h.dispose();
  }
}

/** What the model reads back as the tool message's content. */
export function toolMessage(run: CodeRun): string {
  const parts: string[] = [];
  if (run.stdout) parts.push(`stdout:\n${run.stdout}`);
  if (run.ok) parts.push(`value: ${run.value}`);
  else parts.push(`error: ${run.error}`);
  if (run.truncated) parts.push("(output cut at the sandbox's output limit)");
  return parts.join("\n");
}

class OutputBuffer {
  private readonly lines: string[] = [];
  private size = 0;
  truncated = false;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(line: string): void {
    if (this.truncated) return;
    const room = this.max - this.size;
    if (line.length + 1 > room) {
      this.lines.push(`${line.slice(0, Math.max(0, room))}…`);
      this.truncated = true;
      this.size = this.max;
      return;
    }
    this.lines.push(line);
    this.size += line.length + 1;
  }
  text(): string {
    return this.lines.join("\n");
  }
}

function installConsole(vm: QuickJSContext, out: OutputBuffer): void {
  const console = vm.newObject();
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    const fn = vm.newFunction(level, (...args: QuickJSHandle[]) => {
      out.push(args.map((a) => (vm.typeof(a) === "string" ? vm.getString(a) : showValue(vm, a))).join(" "));
    });
    vm.setProp(console, level, fn);
    fn.dispose();
  }
  vm.setProp(vm.global, "console", console);
  console.dispose();
}

/** JSON for data, String() for the rest (functions, undefined, symbols), computed inside the sandbox. */
function showValue(vm: QuickJSContext, h: QuickJSHandle): string {
  const kind = vm.typeof(h);
  if (kind === "undefined") return "undefined";
  if (kind === "string") return JSON.stringify(vm.getString(h));
  if (kind === "number") return formatNumber(vm.getNumber(h));
  const dumped = vm.dump(h) as unknown;
  try {
    const json = JSON.stringify(dumped);
    if (json !== undefined) return json;
  } catch {
    /* cycles: fall through */
  }
  return String(dumped);
}

const formatNumber = (n: number) => (Number.isFinite(n) ? String(n) : Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity");

function describeError(vm: QuickJSContext, h: QuickJSHandle): string {
  const e = vm.dump(h) as unknown;
  if (e && typeof e === "object") {
    const o = e as { name?: unknown; message?: unknown };
    if (typeof o.message === "string") return `${typeof o.name === "string" ? o.name : "Error"}: ${o.message}`;
  }
  return `thrown: ${typeof e === "string" ? e : JSON.stringify(e)}`;
}
