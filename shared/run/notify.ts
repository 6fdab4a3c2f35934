import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { JobRecord } from "../job/record.ts";
import type { Log } from "../log.ts";
import type { Settings } from "../settings.ts";
import type { Manifest } from "./manifest.ts";
import { keys, type ObjectStore } from "./store.ts";
import { deliverWebhook, webhookId, type WebhookOptions, type WebhookOutcome } from "./webhook.ts";

// The end of a job, told once: when its manifest becomes final (the last worker, the dead-letter
// recorder or a cancel writes it), one SNS message on the stack's JobEvents topic and, when the
// job file names one, a signed call to its webhook. What was sent and how it goes is kept at
// runs/<jobId>/notify.json, written before the webhook's first call and after each attempt.

/** The event's body: the same JSON on the topic and to the webhook. */
export interface JobEndedEvent {
  type: "longdoc.job.finished";
  version: 1;
  jobId: string;
  job: string;
  status: Manifest["status"];
  counts: Manifest["counts"];
  /** What the job cost, in `currency` (the pricing region's). */
  cost: number;
  currency: string;
  /** The same figure when the currency is USD; null otherwise. */
  costUsd: number | null;
  manifestUri: string;
  finishedAt: string | null;
}

export function jobEndedEvent(manifest: Manifest, bucket: string): JobEndedEvent {
  return {
    type: "longdoc.job.finished",
    version: 1,
    jobId: manifest.jobId,
    job: manifest.job,
    status: manifest.status,
    counts: manifest.counts,
    cost: manifest.cost,
    currency: manifest.currency,
    costUsd: manifest.costUsd,
    manifestUri: `s3://${bucket}/${keys.manifest(manifest.jobId)}`,
    finishedAt: manifest.finishedAt,
  };
}

/** runs/<jobId>/notify.json: the last end-of-job event and what became of it, updated as delivery goes. */
export interface NotifyRecord {
  event: JobEndedEvent;
  topic: { messageId: string } | { error: string } | null;
  /**
   * The webhook's origin and path only (a query may carry a token), the message id its calls
   * carry (`webhook-id`), and how delivery goes: `pending` until the receiver answered 2xx or
   * the attempts ran out; `nextAttemptAt` while a retry waits.
   */
  webhook: ({ url: string; id: string; pending: boolean; nextAttemptAt: string | null } & WebhookOutcome) | null;
  at: string;
}

export interface JobNotifier {
  jobEnded(store: ObjectStore, job: JobRecord, manifest: Manifest): Promise<NotifyRecord>;
}

export interface NotifierOptions {
  log: Log;
  /** The stack's topic (SNS; fauxqs locally). Without it no message is published. */
  topic?: { sns: SNSClient; topicArn: string };
  /** Signs webhook calls; without it a job's webhook is not called (and notify.json says why). */
  webhookSecret?: string | null;
  webhook?: Omit<WebhookOptions, "secret">;
  now?: () => number;
}

const shownUrl = (url: string) => {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(not a URL)";
  }
};

/**
 * Publishes the event and calls the job's webhook; never throws, since the job has ended either
 * way: failures are logged and recorded in notify.json. The topic message carries `status` and
 * `job` as message attributes, so subscribers can filter (say, only failed jobs).
 */
export function createNotifier(o: NotifierOptions): JobNotifier {
  return {
    async jobEnded(store, job, manifest) {
      const event = jobEndedEvent(manifest, store.bucket);
      const body = JSON.stringify(event);
      let topic: NotifyRecord["topic"] = null;
      if (o.topic) {
        try {
          const out = await o.topic.sns.send(
            new PublishCommand({
              TopicArn: o.topic.topicArn,
              Subject: `longdoc job ${event.status}: ${event.job}`.slice(0, 100),
              Message: body,
              MessageAttributes: { status: { DataType: "String", StringValue: event.status }, job: { DataType: "String", StringValue: event.job } },
            }),
          );
          topic = { messageId: out.MessageId ?? "" };
        } catch (e) {
          topic = { error: (e as Error).message };
          o.log.error({ jobId: job.jobId, error: (e as Error).message }, "could not publish the job-finished event");
        }
      }
      const url = job.spec.notify?.webhook;
      const now = () => new Date((o.now ?? Date.now)()).toISOString();
      const save = async (record: NotifyRecord) =>
        store.putJson(keys.notify(job.jobId), record).catch((e: unknown) => o.log.error({ jobId: job.jobId, error: String(e) }, "could not write notify.json"));
      const record: NotifyRecord = { event, topic, webhook: null, at: now() };
      if (url && !o.webhookSecret) {
        record.webhook = {
          url: shownUrl(url),
          id: webhookId(body),
          pending: false,
          nextAttemptAt: null,
          ok: false,
          attempts: 0,
          status: null,
          error: "no webhook secret is configured (LONGDOC_WEBHOOK_SECRET locally, the WebhookSecret SST secret when deployed); not called unsigned",
        };
      } else if (url) {
        // Recorded before the first call and after each attempt, so a slow receiver or a stopped
        // process never leaves the job without a record of what was sent.
        record.webhook = { url: shownUrl(url), id: webhookId(body), pending: true, nextAttemptAt: null, ok: false, attempts: 0, status: null, error: null };
        await save(record);
        const outcome = await deliverWebhook(url, body, {
          ...o.webhook,
          secret: o.webhookSecret!,
          onAttempt: async ({ nextAttemptInMs, ...so }) => {
            record.webhook = { ...record.webhook!, ...so, pending: true, nextAttemptAt: new Date((o.now ?? Date.now)() + nextAttemptInMs).toISOString() };
            record.at = now();
            await save(record);
          },
        });
        record.webhook = { ...record.webhook, ...outcome, pending: false, nextAttemptAt: null };
        if (!outcome.ok) o.log.error({ jobId: job.jobId, webhook: record.webhook.url, attempts: outcome.attempts, status: outcome.status, error: outcome.error }, "webhook not delivered");
      }
      record.at = now();
      await save(record);
      return record;
    },
  };
}

/** The notifier of an edge (a Lambda, a local worker process, a local cancel), from its settings. */
export function notifierFromSettings(n: Settings["notify"], sns: SNSClient | undefined, log: Log): JobNotifier {
  return createNotifier({
    log,
    ...(n.topicArn && sns && { topic: { sns, topicArn: n.topicArn } }),
    webhookSecret: n.webhookSecret,
    webhook: { loopbackHttp: n.loopbackHttp },
  });
}
