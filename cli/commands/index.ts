// Every command of `longdoc`, each loaded only when it runs.
import type { Command } from "commander";
import type { Edge } from "../edge.ts";

export type Register = (program: Command, edge: Edge) => void;

// In the order `longdoc --help` lists them. Each CLI process loads only the command it runs: the
// others' modules (the emulators, the simulator, the document readers) cost it about half a second.
export const COMMANDS: Record<string, () => Promise<Register>> = {
  run: async () => (await import("./run.ts")).registerRun,
  validate: async () => (await import("./validate.ts")).registerValidate,
  extract: async () => (await import("./extract.ts")).registerExtract,
  estimate: async () => (await import("./estimate.ts")).registerEstimate,
  sim: async () => (await import("./sim.ts")).registerSim,
  status: async () => (await import("./status.ts")).registerStatus,
  jobs: async () => (await import("./jobs.ts")).registerJobs,
  results: async () => (await import("./results.ts")).registerResults,
  submit: async () => (await import("./submit.ts")).registerSubmit,
  retry: async () => (await import("./retry.ts")).registerRetry,
  cancel: async () => (await import("./cancel.ts")).registerCancel,
  ui: async () => (await import("./ui.ts")).registerUi,
  schema: async () => (await import("./schema.ts")).registerSchema,
  models: async () => (await import("./models.ts")).registerModels,
  doctor: async () => (await import("./doctor.ts")).registerDoctor,
};

/** The named command alone; every command for help, a version or a name that is not one. */
export function commandsFor(name: string | undefined): Promise<Register[]> {
  const chosen = name !== undefined && Object.hasOwn(COMMANDS, name) ? [COMMANDS[name]!] : Object.values(COMMANDS);
  return Promise.all(chosen.map((load) => load()));
}
