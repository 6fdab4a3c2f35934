/**
 * Where one delivery's time went, for its last log line ("item done"): the worker's own steps
 * (reading the documents, extracting and counting them, planning the call, writing the answer and
 * result), the model call, and the rest, which is the fleet's bookkeeping (claim, quota, ledger,
 * attempt records, the finish count). bench/overhead.ts reads it; so can anyone tuning a worker.
 */
export type Step = "read" | "extract" | "plan" | "model" | "write";

export class ItemSteps {
  private readonly started = performance.now();
  private readonly ms: Record<Step, number> = { read: 0, extract: 0, plan: 0, model: 0, write: 0 };

  add(step: Step, ms: number): void {
    this.ms[step] += ms;
  }

  async time<T>(step: Step, work: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await work();
    } finally {
      this.add(step, performance.now() - t);
    }
  }

  timeSync<T>(step: Step, work: () => T): T {
    const t = performance.now();
    try {
      return work();
    } finally {
      this.add(step, performance.now() - t);
    }
  }

  /** Milliseconds per step, and `otherMs`: the delivery's time that no step accounts for. */
  summary(): Record<`${Step}Ms` | "totalMs" | "otherMs", number> {
    const total = performance.now() - this.started;
    const r = (x: number) => Math.round(x * 10) / 10;
    const steps = Object.values(this.ms).reduce((a, b) => a + b, 0);
    return {
      totalMs: r(total),
      readMs: r(this.ms.read),
      extractMs: r(this.ms.extract),
      planMs: r(this.ms.plan),
      modelMs: r(this.ms.model),
      writeMs: r(this.ms.write),
      otherMs: r(total - steps),
    };
  }
}
