import type { Secret, SnsTopic, Sst } from "./platform.ts";

declare const sst: Sst;

/** Where the end of a job is told: the topic, and the secret that signs job webhooks. */
export interface JobEvents {
  topic: SnsTopic;
  webhookSecret: Secret;
}

/**
 * One SNS topic for "job finished" events (shared/run/notify.ts): subscribers of any kind (SQS,
 * Lambda, HTTPS, email) with filter policies on the `status` and `job` message attributes, and
 * the same API the local emulator serves, so the local runs publish through the same code.
 * Not linked to anything: a link grants every SNS action, so the publishers get `sns:Publish` on
 * this topic alone (infra/queue.ts). The secret has no placeholder: set it once per stage with
 * `npx sst secret set WebhookSecret whsec_$(openssl rand -base64 32)` (a Standard Webhooks secret).
 */
export function createEvents(): JobEvents {
  return { topic: new sst.aws.SnsTopic("JobEvents"), webhookSecret: new sst.Secret("WebhookSecret") };
}

/** What a function that may finish a job gets: the topic's ARN in its environment, publish on it only, and the secret linked. */
export const publisherGrant = (e: JobEvents) => ({
  environment: { LONGDOC_EVENTS_TOPIC: e.topic.arn },
  permission: { actions: ["sns:Publish"], resources: [e.topic.arn] },
  link: e.webhookSecret,
});
