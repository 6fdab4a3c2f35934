import type { Output } from "./platform.ts";

/**
 * The slice of SST v4's `sst.aws.Dynamo` used here (anomalyco/sst platform/src/components/aws/
 * dynamo.ts, v4.17): `fields`, `primaryIndex: {hashKey, rangeKey}`, `ttl`, plus the options the
 * test's fake accepts. Typed here rather than in platform.ts, which this module does not own.
 */
export interface DynamoArgs {
  fields: Record<string, "string" | "number" | "binary">;
  primaryIndex: { hashKey: string; rangeKey?: string };
  ttl?: string;
  deletionProtection?: boolean;
}

export interface Dynamo {
  readonly name: Output<string>;
  readonly arn: Output<string>;
}

declare const sst: { aws: { Dynamo: new (name: string, args: DynamoArgs) => Dynamo } };

/** The hash key and TTL attribute shared/run/coord.ts writes (and shared/local/dynamo.ts creates locally). */
export const COORD_HASH_KEY = "pk";
export const COORD_TTL = "expiresAt";

/**
 * The workers' coordination table (claims, quota pacing, cost ledger, finished counts): one item
 * per key, no indexes. SST's Dynamo is on-demand (PAY_PER_REQUEST), so bursts of a big job need
 * no capacity planning. TTL on `expiresAt` (epoch seconds) clears finished jobs' items.
 */
export function createCoordTable(): { coord: Dynamo } {
  // Linked as Resource.Coord (`.name`); linking also grants the function DynamoDB access to it.
  const coord = new sst.aws.Dynamo("Coord", {
    fields: { [COORD_HASH_KEY]: "string" },
    primaryIndex: { hashKey: COORD_HASH_KEY },
    ttl: COORD_TTL,
  });
  return { coord };
}
