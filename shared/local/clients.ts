/**
 * Real AWS SDK clients for local endpoints: the embedded S3/SQS emulator (or a LocalStack-like
 * server) and the DynamoDB emulator. Kept apart from the emulators themselves so a worker process,
 * like a Lambda container, loads the clients and never the emulators' code (fauxqs, dynalite).
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";
import { s3Client } from "../run/store.ts";

// Local endpoints take any credentials; the region is required but unused.
const region = "us-east-1";
const credentials = { accessKeyId: "local", secretAccessKey: "local" };

/** S3, SQS and SNS clients for one endpoint (S3 path-style, as emulators serve it). */
export function localClients(endpoint: string) {
  return {
    s3: s3Client({ endpoint, region, credentials, forcePathStyle: true }),
    sqs: new SQSClient({ endpoint, region, credentials }),
    sns: new SNSClient({ endpoint, region, credentials }),
  };
}

/** A DynamoDB client for a local endpoint. */
export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region, credentials });
}
