// Consensus arithmetic: field-wise majority, numeric tolerance, string normalisation, ties,
// missing fields and unusable samples.
import { describe, expect, it } from "vitest";
import { jsonConsensus, textConsensus } from "../shared/reason/consensus.ts";

describe("JSON consensus", () => {
  it("takes the field-by-field majority and scores each field and the whole", () => {
    const c = jsonConsensus([
      { company: "3M", revenue: 32765, margin: 0.22 },
      { company: "3M", revenue: 32765, margin: 0.25 },
      { company: "3m ", revenue: 32765, margin: 0.22 },
    ]);
    expect(c.answer).toEqual({ company: "3M", revenue: 32765, margin: 0.22 });
    expect(c.fields.map((f) => [f.path, f.agreement])).toEqual([
      ["company", 1],
      ["revenue", 1],
      ["margin", 0.6667],
    ]);
    expect(c.agreement).toBeCloseTo((1 + 1 + 2 / 3) / 3, 4);
    expect(c.disagreements).toEqual([
      { path: "margin", value: 0.22, agreement: 0.6667, tie: false, groups: [{ value: 0.22, samples: [1, 3] }, { value: 0.25, samples: [2] }] },
    ]);
    expect(c.ties).toEqual([]);
  });

  it("counts numbers within the job's tolerance as agreeing (absolute or relative)", () => {
    const samples = [{ r: 1.5 }, { r: 1.504 }, { r: 1.6 }];
    expect(jsonConsensus(samples).fields[0]!.agreement).toBeCloseTo(1 / 3, 4);
    expect(jsonConsensus(samples, { absolute: 0.01, relative: 0 }).fields[0]!.agreement).toBeCloseTo(2 / 3, 4);
    expect(jsonConsensus(samples, { absolute: 0, relative: 0.1 }).fields[0]!.agreement).toBe(1);
    // The winning group's earliest sample gives the value, not an average.
    expect(jsonConsensus(samples, { absolute: 0.01, relative: 0 }).answer).toEqual({ r: 1.5 });
  });

  it("lists ties and settles them by sample order", () => {
    const c = jsonConsensus([{ x: 1, y: "a" }, { x: 2, y: "a" }]);
    expect(c.answer).toEqual({ x: 1, y: "a" });
    expect(c.ties).toEqual(["x"]);
    expect(c.disagreements[0]).toMatchObject({ path: "x", tie: true, agreement: 0.5 });
    const four = jsonConsensus([{ x: 1 }, { x: 2 }, { x: 2 }, { x: 1 }]);
    expect(four.answer).toEqual({ x: 1 });
    expect(four.ties).toEqual(["x"]);
  });

  it("walks nested objects and equal-length arrays; unequal arrays vote as one field", () => {
    const c = jsonConsensus([
      { ratios: { current: 1.4, quick: 0.9 }, segments: [{ name: "Safety", revenue: 6827 }], years: [2018, 2017] },
      { ratios: { current: 1.4, quick: 1.0 }, segments: [{ name: "safety", revenue: 6827 }], years: [2018] },
      { ratios: { current: 1.4, quick: 0.9 }, segments: [{ name: "Safety", revenue: 6800 }], years: [2018, 2017] },
    ]);
    expect(c.answer).toEqual({ ratios: { current: 1.4, quick: 0.9 }, segments: [{ name: "Safety", revenue: 6827 }], years: [2018, 2017] });
    expect(c.fields.map((f) => f.path)).toEqual(["ratios.current", "ratios.quick", "segments[0].name", "segments[0].revenue", "years"]);
    expect(c.fields.find((f) => f.path === "years")!.agreement).toBeCloseTo(2 / 3, 4);
  });

  it("counts a missing field and an unusable sample against agreement", () => {
    const c = jsonConsensus([{ a: 1, b: 2 }, { a: 1 }, undefined]);
    expect(c.unusable).toEqual([3]);
    // b is absent from two of the three: left out, and that is what two samples agree on.
    expect(c.answer).toEqual({ a: 1 });
    expect(c.fields).toEqual([
      expect.objectContaining({ path: "a", agreement: 0.6667, tie: false }),
      expect.objectContaining({ path: "b", value: undefined, agreement: 0.6667, groups: [{ value: null, samples: [2, 3] }, { value: 2, samples: [1] }] }),
    ]);
    const two = jsonConsensus([{ a: 1, b: 2 }, { a: 1, b: 2 }, { a: 1 }]);
    expect(two.answer).toEqual({ a: 1, b: 2 });
    expect(two.fields[1]).toMatchObject({ path: "b", agreement: 0.6667 });
    // A field most samples leave out is left out of the answer.
    expect(jsonConsensus([{ a: 1, b: 2 }, { a: 1 }, { a: 1 }]).answer).toEqual({ a: 1 });
  });

  it("a single sample agrees with itself; no usable sample gives a null answer and agreement 0", () => {
    expect(jsonConsensus([{ a: 1 }])).toMatchObject({ answer: { a: 1 }, agreement: 1, ties: [], disagreements: [] });
    expect(jsonConsensus([undefined, undefined])).toMatchObject({ answer: null, agreement: 0, unusable: [1, 2] });
  });
});

describe("text consensus", () => {
  it("groups texts equal after case and spacing, picks the earliest of the largest group", () => {
    const c = textConsensus(["Net margin was 12%.", "net  margin was 12%.", "Net margin was 13%."]);
    expect(c).toEqual({ chosen: 0, agreement: 0.6667, groups: [[0, 1], [2]], tie: false });
    expect(textConsensus(["a", "b"])).toMatchObject({ chosen: 0, agreement: 0.5, tie: true });
  });
});
