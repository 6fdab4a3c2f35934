/// <reference path="./.sst/platform/config.d.ts" />
// @ts-nocheck -- the referenced types exist only after `sst install`; the wiring in infra/ is
// type-checked everywhere (infra/platform.ts) and this file is exercised by test/infra.test.ts.

export default $config({
  app(input) {
    return {
      name: "longdoc",
      home: "aws",
      removal: input?.stage === "prod" ? "retain" : "remove",
      protect: input?.stage === "prod",
    };
  },
  async run() {
    const { deploy } = await import("./infra/index.ts");
    // The stage's name among the outputs: longdoc keeps each stage's outputs apart (cli/stages.ts).
    return { stage: $app.stage, ...(await deploy({ jobsDir: "jobs", env: process.env })) };
  },
});
