// infra/coord.ts against a recording fake of SST's `sst.aws.Dynamo` (as test/infra.test.ts does
// for the other components): SST's engine needs Pulumi and an AWS account. The fake accepts only
// the option names SST v4's Dynamo takes (anomalyco/sst platform/src/components/aws/dynamo.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCoordTable } from "../infra/coord.ts";
import { TTL_ATTRIBUTE } from "../shared/local/dynamo.ts";
import { coordKeys } from "../shared/run/coord.ts";

type Args = Record<string, any>;
interface Rec {
  name: string;
  args: Args;
  self: any;
}

const DYNAMO_KEYS = ["fields", "primaryIndex", "globalIndexes", "localIndexes", "stream", "ttl", "deletionProtection", "transform"];

function installFakeSst() {
  const recs: Rec[] = [];
  class Dynamo {
    name: string;
    arn: string;
    constructor(name: string, args: Args) {
      for (const k of Object.keys(args ?? {})) if (!DYNAMO_KEYS.includes(k)) throw new Error(`fake sst: Dynamo has no option '${k}' in SST v4`);
      if (recs.some((r) => r.name === name)) throw new Error(`fake sst: two Dynamo components named ${name}`);
      // DynamoDB takes attribute definitions only for key attributes; SST passes `fields` as them.
      const keys = new Set([args.primaryIndex?.hashKey, args.primaryIndex?.rangeKey].filter(Boolean));
      for (const f of Object.keys(args.fields ?? {})) if (!keys.has(f)) throw new Error(`fake sst: field '${f}' is not in any index`);
      for (const k of keys) if (!args.fields?.[k]) throw new Error(`fake sst: index key '${k}' is not in fields`);
      this.name = `fake-${name.toLowerCase()}-table`;
      this.arn = `arn:aws:dynamodb:us-east-1:123456789012:table/${this.name}`;
      recs.push({ name, args, self: this });
    }
  }
  (globalThis as any).sst = { aws: { Dynamo } };
  return recs;
}

let recs: Rec[];
beforeEach(() => {
  recs = installFakeSst();
});
afterEach(() => {
  delete (globalThis as any).sst;
});

describe("coordination table", () => {
  it("is one Dynamo table named Coord (Resource.Coord), hash key pk (string), TTL on expiresAt", () => {
    const { coord } = createCoordTable();
    expect(recs).toHaveLength(1);
    const [rec] = recs;
    expect(rec!.name).toBe("Coord");
    expect(rec!.self).toBe(coord);
    expect(rec!.args).toEqual({ fields: { pk: "string" }, primaryIndex: { hashKey: "pk" }, ttl: "expiresAt" });
  });

  it("uses the key and TTL attribute that the store writes and the local table has", () => {
    createCoordTable();
    expect(recs[0]!.args.ttl).toBe(TTL_ATTRIBUTE);
    expect(coordKeys.claim("j", "i")).toMatch(/^claim#/);
  });

  it("stays on-demand: no capacity settings, no transform that would set them", () => {
    createCoordTable();
    expect(recs[0]!.args.transform).toBeUndefined();
  });
});
