import { Ajv } from "ajv";
import addFormats from "ajv-formats";

// Answer schemas often use formats such as "date"; ajv knows none without ajv-formats.
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats.default(ajv);

/** Checks a JSON answer against the job's schema; returns a readable problem or null. */
export function validateAnswer(answer: string, schema: Record<string, unknown>): string | null {
  let value: unknown;
  try {
    value = JSON.parse(answer);
  } catch (e) {
    return `the answer is not valid JSON: ${(e as Error).message}`;
  }
  const validate = ajv.compile(schema);
  if (validate(value)) return null;
  return `the answer does not match the schema: ${ajv.errorsText(validate.errors, { dataVar: "answer" })}`;
}

/** Why a JSON Schema cannot be used, or null when it compiles. */
export function schemaProblem(schema: Record<string, unknown>): string | null {
  try {
    ajv.compile(schema);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
