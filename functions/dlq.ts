import { S3Client } from "@aws-sdk/client-s3";
import { createDeadLetterHandler } from "../shared/worker/dead.ts";
import { createLog } from "../shared/log.ts";

// Tasks that used up their deliveries: record the item as failed so the manifest stays whole.
export const handler = createDeadLetterHandler(() => ({ s3: new S3Client({}), log: createLog({ name: "dlq" }) }));
