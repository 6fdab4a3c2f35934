import type { Log } from "../log.ts";

/**
 * Bookkeeping that a delivery owes but that nothing before the item's result depends on:
 * settling a call's quota and spend with what it was billed, removing superseded partial files.
 * It waits until the result is written (or the next call starts, so the ledgers are never behind
 * by more than one call), then runs beside the finish; the delivery does not end before it ends.
 * A failure is logged: an unsettled reservation stays at its worst case, which errs on the safe side.
 */
export class PendingWork {
  private readonly log: Pick<Log, "warn">;
  private readonly context: Record<string, unknown>;
  private readonly held: { work: () => Promise<unknown>; what: string }[] = [];
  private readonly running = new Set<Promise<unknown>>();

  constructor(log: Pick<Log, "warn">, context: Record<string, unknown>) {
    this.log = log;
    this.context = context;
  }

  /** Holds `work` until `start()`. */
  add(what: string, work: () => Promise<unknown>): void {
    this.held.push({ work, what });
  }

  /** Starts everything held so far. */
  start(): void {
    for (const { work, what } of this.held.splice(0)) {
      const p = Promise.resolve()
        .then(work)
        .catch((e: unknown) => this.log.warn({ ...this.context, error: String(e) }, `${what} failed`));
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    }
  }

  /** Starts what is held and waits until all of it is done. */
  async finish(): Promise<void> {
    this.start();
    while (this.running.size) await Promise.all([...this.running]);
  }
}
