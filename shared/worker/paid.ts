import pRetry from "p-retry";
import { isInfraFault } from "../errors.ts";

/**
 * Writes that follow a paid answer are tried again in place when S3 or DynamoDB fails past the
 * SDK's own retries: handing the task back would make the next delivery start over. Every write
 * here is idempotent (a put of the same bytes, result.json absent-only, the finish's own guard).
 */
export const keepPaid = <T>(write: () => Promise<T>): Promise<T> => pRetry(write, { retries: 4, minTimeout: 200, factor: 2, shouldRetry: ({ error }) => isInfraFault(error) });
