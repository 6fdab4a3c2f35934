/**
 * The baseline the fleet is measured against ("today's approach"): each worker process keeps a
 * fixed share of the account quota (RPM/N, TPM/N for a fleet of N processes) in its own memory,
 * with an in-process limiter (fixed-share-limiter.ts, local only), and never asks the others. Only the
 * quota is local: claims, the cost ledger and the finish counter still go to the coordination
 * table, so the comparison is about quota alone.
 *
 * A reservation waits in process for as long as the local limiter says (that is what the old
 * limiter did), so `maxWaitMs` is not honoured; a job's own `limits.rpm`/`limits.tpm` are not
 * applied in this mode.
 */
import type { Coordinator, QuotaTicket } from "../run/coord.ts";
import { RateLimiter } from "./fixed-share-limiter.ts";

export function withFixedShareQuota(inner: Coordinator, processes: number): Coordinator {
  const n = Math.max(1, processes);
  const limiters = new Map<string, RateLimiter>();
  const limiterFor = (model: string, account: { rpm: number; tpm: number }) => {
    const key = `${model}#${account.rpm}#${account.tpm}`;
    let l = limiters.get(key);
    if (!l) limiters.set(key, (l = new RateLimiter({ rpm: account.rpm / n, tpm: account.tpm / n })));
    return l;
  };
  const tickets = new WeakMap<QuotaTicket, RateLimiter>();
  return {
    ...inner,
    // Each process paces itself: there is no shared line to wait in.
    async quotaLineEnd(_model, _jobId, now = Date.now()) {
      return now;
    },
    async shortenLine() {},
    async reserveQuota(r) {
      const limiter = limiterFor(r.model, r.account);
      await limiter.acquire(r.tokens);
      const ticket: QuotaTicket = { keys: [], reservedTokens: r.tokens, entryId: "", startAt: Date.now() };
      tickets.set(ticket, limiter);
      return { ok: true, startAt: Date.now(), ticket };
    },
    async releaseQuota(ticket) {
      tickets.get(ticket)?.settle(ticket.reservedTokens, 0);
    },
    async settleQuota(ticket, actualTokens) {
      tickets.get(ticket)?.settle(ticket.reservedTokens, actualTokens);
    },
  };
}
