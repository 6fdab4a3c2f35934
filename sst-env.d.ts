/* Types of the resources linked to the functions (infra/). `sst deploy` regenerates this file;
   it is written by hand here because SST's engine cannot run on this machine. */
import "sst";
declare module "sst" {
  export interface Resource {
    DashscopeApiKey: { type: "sst.sst.Secret"; value: string };
    WebhookSecret: { type: "sst.sst.Secret"; value: string };
    Runs: { type: "sst.aws.Bucket"; name: string };
    Tasks: { type: "sst.aws.Queue"; url: string };
    Coord: { type: "sst.aws.Dynamo"; name: string };
  }
}
export {};
