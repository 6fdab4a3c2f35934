import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, UpdateTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { dynamoClient } from "./clients.ts";

/**
 * The coordination table on a local DynamoDB emulator (dynalite, in process). Same key schema as
 * infra/coord.ts: hash key `pk` (string), TTL attribute `expiresAt`. dynalite neither expires
 * items nor implements UpdateTimeToLive or transactions; shared/run/coord.ts needs none of them.
 */
export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  table: string;
  stop(): Promise<void>;
}

export interface LocalDynamoOptions {
  /** 0 (the default) takes a free port. */
  port?: number;
  /** Keep the table in this folder (LevelDB) so later commands see it; in memory when unset. */
  path?: string;
}

export const COORD_TABLE = "longdoc-coord";
export const TTL_ATTRIBUTE = "expiresAt";

type Dynalite = (opts: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number; path?: string }) => Server;
// dynalite is CommonJS without types.
const dynalite = createRequire(import.meta.url)("dynalite") as Dynalite;

/** Creates the table if it is missing (a persisted state already has it), waits until it is ACTIVE, and asks for TTL where supported. */
export async function createCoordTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
  } catch (e) {
    if ((e as { name?: string }).name !== "ResourceInUseException") throw e;
  }
  for (let i = 0; ; i++) {
    const status = (await client.send(new DescribeTableCommand({ TableName: table }))).Table?.TableStatus;
    if (status === "ACTIVE") break;
    if (i > 200) throw new Error(`DynamoDB table ${table} is still ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }));
  } catch (e) {
    // dynalite has no UpdateTimeToLive (UnknownOperationException); a table with TTL on already says ValidationException.
    const name = (e as { name?: string }).name;
    if (name !== "UnknownOperationException" && name !== "ValidationException") throw e;
  }
}

/** Starts dynalite on 127.0.0.1 and creates the coordination table. */
export async function startLocalDynamo(opts: LocalDynamoOptions = {}): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: opts.path });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = dynamoClient(endpoint);
  const stop = async () => {
    client.destroy();
    // Idle keep-alive sockets would hold close() open.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    await createCoordTable(client, COORD_TABLE);
  } catch (e) {
    await stop();
    throw e;
  }
  return { endpoint, client, table: COORD_TABLE, stop };
}
