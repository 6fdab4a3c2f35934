import { afterAll, beforeAll } from "vitest";
import { startLocalStack, type LocalStack, type LocalStackOptions } from "../../shared/local/stack.ts";
import { startSimulator, type Simulator, type SimulatorOptions } from "../../shared/sim/index.ts";

export interface Loopback {
  stack: LocalStack;
  sim: Simulator;
  /** The environment of a run that calls the simulator as if it were the real endpoint. */
  env(): Record<string, string>;
}

/**
 * The emulator and the simulator on loopback for one test file: started before its tests,
 * stopped after. The fields are filled in by `beforeAll`, so read them inside tests.
 */
export function useLoopback(opts: { stack?: LocalStackOptions; sim?: Omit<SimulatorOptions, "port"> } = {}): Loopback {
  const ctx: Partial<Loopback> & Pick<Loopback, "env"> = {
    env: () => ({ DASHSCOPE_API_KEY: "sk-test", QWEN_BASE_URL: ctx.sim!.baseURL }),
  };
  beforeAll(async () => {
    ctx.stack = await startLocalStack(opts.stack);
    ctx.sim = await startSimulator({ ...opts.sim, port: 0 });
  });
  afterAll(async () => {
    await ctx.sim?.stop();
    await ctx.stack?.stop();
  });
  return ctx as Loopback;
}
