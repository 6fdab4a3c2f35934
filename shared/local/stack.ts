import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { CreateTopicCommand, type SNSClient } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, SetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { startFauxqs, type FauxqsServer } from "fauxqs";
import path from "node:path";
import { deployment } from "../settings.ts";
import { startLocalDynamo, type LocalDynamo } from "./dynamo.ts";
import { lockState } from "./owner.ts";
import { localClients } from "./clients.ts";

export interface LocalStack {
  endpoint: string;
  s3: S3Client;
  sqs: SQSClient;
  bucket: string;
  queueUrl: string;
  dlqUrl: string;
  /** The finalize queue: the worker that counts a job's last item asks here for the job's end to be written. */
  finalizeUrl: string;
  /** The JobEvents topic of a deployed stack, emulated: the end-of-job events go here. */
  sns: SNSClient;
  topicArn: string;
  visibilityTimeoutS: number;
  maxReceives: number;
  /** The coordination table (DynamoDB emulated by dynalite), persisted beside the emulator's state. */
  dynamo: LocalDynamo;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  /** Persist queues and objects here (SQLite) so later commands can read a run; in memory when unset. */
  dataDir?: string;
  /** Names this process in the state's owner file (`longdoc run`, `longdoc retry`...). */
  command?: string;
  visibilityTimeoutS?: number;
  maxReceives?: number;
}

const BUCKET = "longdoc-runs";
const QUEUE = "longdoc-tasks";
const DLQ = "longdoc-tasks-dlq";
const FINALIZE = "longdoc-finalize";
const FINALIZE_DLQ = "longdoc-finalize-dlq";
const TOPIC = "longdoc-job-events";

/**
 * Starts the SQS + S3 emulator on a free loopback port and creates what a deployed stack has:
 * the runs bucket, the task queue and its dead-letter queue with a redrive policy.
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  // One live owner per persisted state: a second process is refused with the owner's name.
  const lock = opts.dataDir === undefined ? undefined : await lockState(opts.dataDir, opts.command ?? "longdoc");
  let server: FauxqsServer;
  let dynamo: LocalDynamo;
  try {
    server = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false, dataDir: opts.dataDir });
    dynamo = await startLocalDynamo({ path: opts.dataDir === undefined ? undefined : path.join(opts.dataDir, "coord") });
  } catch (e) {
    lock?.release();
    throw e;
  }
  const endpoint = `http://127.0.0.1:${server.port}`;
  const { s3, sqs, sns } = localClients(endpoint);
  const visibilityTimeoutS = opts.visibilityTimeoutS ?? deployment.local.visibilityTimeoutS;
  const maxReceives = opts.maxReceives ?? deployment.maxReceives;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  } catch (e) {
    // A persisted stack already has its bucket.
    if ((e as { name?: string }).name !== "BucketAlreadyOwnedByYou" && (e as { name?: string }).name !== "BucketAlreadyExists") throw e;
  }
  const dlqUrl = await ensureQueue(sqs, DLQ, { MessageRetentionPeriod: String(deployment.dlqRetentionS) });
  const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
  const queueUrl = await ensureQueue(sqs, QUEUE, {
    VisibilityTimeout: String(visibilityTimeoutS),
    MessageRetentionPeriod: String(deployment.taskRetentionS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: maxReceives }),
  });
  const finalizeDlqUrl = await ensureQueue(sqs, FINALIZE_DLQ, { MessageRetentionPeriod: String(deployment.dlqRetentionS) });
  const finalizeDlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: finalizeDlqUrl, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
  const finalizeUrl = await ensureQueue(sqs, FINALIZE, {
    VisibilityTimeout: String(visibilityTimeoutS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: finalizeDlqArn, maxReceiveCount: deployment.finalizeMaxReceives }),
  });
  // CreateTopic returns the existing topic of a persisted state.
  const topicArn = (await sns.send(new CreateTopicCommand({ Name: TOPIC }))).TopicArn!;
  return {
    endpoint,
    s3,
    sqs,
    bucket: BUCKET,
    queueUrl,
    dlqUrl,
    finalizeUrl,
    sns,
    topicArn,
    visibilityTimeoutS,
    maxReceives,
    dynamo,
    async stop() {
      s3.destroy();
      sqs.destroy();
      sns.destroy();
      await Promise.all([server.stop(), dynamo.stop()]);
      lock?.release();
    },
  };
}

/**
 * Creates a queue, or, when a persisted state already has it with other attributes (SQS then
 * answers QueueNameExists), brings its attributes up to date; the messages it holds are kept.
 */
async function ensureQueue(sqs: SQSClient, name: string, attributes: Record<string, string>): Promise<string> {
  try {
    return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
  } catch (e) {
    if (!/QueueNameExists$/.test((e as { name?: string }).name ?? "")) throw e;
    const url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
    return url;
  }
}
