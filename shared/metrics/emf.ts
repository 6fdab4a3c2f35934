/**
 * CloudWatch embedded metric format (EMF): one JSON object per log line whose `_aws` member tells
 * CloudWatch Logs which of its fields are metrics, in which namespace and with which dimensions;
 * CloudWatch extracts them without a PutMetricData call. A few lines here rather than a library:
 * the format is a documented JSON shape, and the worker emits one line per delivery.
 */

export type EmfUnit = "Count" | "None" | "Milliseconds" | "Seconds";

/** A group of metrics reported under the same dimension sets. */
export interface EmfDirective {
  /** Each set is a list of dimension names (fields of the line holding strings). */
  dimensions: string[][];
  metrics: { name: string; unit: EmfUnit }[];
}

/** CloudWatch's limits for one directive (EMF specification). */
const MAX_DIMENSIONS = 30;
const MAX_METRICS = 100;

export interface EmfRecord {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: EmfUnit }[] }[] };
  [field: string]: unknown;
}

/**
 * One EMF object. `fields` holds every dimension's value (a string) and every metric's value (a
 * number), plus any other property worth searching in the logs. A directive naming a field that
 * is missing or of the wrong type is refused: CloudWatch would drop the whole line silently.
 */
export function emfRecord(namespace: string, directives: EmfDirective[], fields: Record<string, string | number>, timestamp: number): EmfRecord {
  for (const d of directives) {
    if (d.metrics.length > MAX_METRICS) throw new Error(`EMF: ${d.metrics.length} metrics in one directive; CloudWatch takes at most ${MAX_METRICS}`);
    for (const set of d.dimensions) {
      if (set.length > MAX_DIMENSIONS) throw new Error(`EMF: a dimension set of ${set.length}; CloudWatch takes at most ${MAX_DIMENSIONS}`);
      for (const name of set) if (typeof fields[name] !== "string") throw new Error(`EMF: dimension '${name}' needs a string value in the line`);
    }
    for (const m of d.metrics) if (typeof fields[m.name] !== "number" || !Number.isFinite(fields[m.name])) throw new Error(`EMF: metric '${m.name}' needs a finite number in the line`);
  }
  return {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: directives.map((d) => ({ Namespace: namespace, Dimensions: d.dimensions, Metrics: d.metrics.map((m) => ({ Name: m.name, Unit: m.unit })) })),
    },
    ...fields,
  };
}

/** Where a Lambda prints EMF: stdout, one line, straight to the stream (no console prefix, so CloudWatch reads it as JSON). */
export const printEmf = (record: EmfRecord): void => {
  process.stdout.write(JSON.stringify(record) + "\n");
};
