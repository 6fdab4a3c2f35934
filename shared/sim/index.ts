/**
 * longdoc's Qwen3-Max API simulator (public entry). See server.ts for the options,
 * faults.ts for the fault spec grammar, proof.ts for the proof format.
 */
export { startSimulator, type Simulator, type SimulatorOptions, type SimCall, type SimOutcome } from "./server.ts";
export { parseSimProof, parseSimHeader, proofText, findDocuments, type DocumentProof } from "./proof.ts";
export { parseFaultSpec, FAULT_KINDS, type FaultKind, type FaultSpec, type InjectedFault } from "./faults.ts";
export { providerErrors, type ProviderError } from "./errors.ts";
export { instanceOf } from "./jsonschema.ts";
