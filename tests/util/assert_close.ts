/**
 * Compares arrays element by element: |a - e| <= atol + rtol * |e|. On failure, prints the
 * first mismatches and the largest difference, so a wrong kernel shows where it is wrong.
 * @module
 */

/** Tolerances: absolute and relative. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Throws unless `actual` matches `expected` within the tolerance. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: Tolerance,
  label: string,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  }
  const bad: string[] = [];
  let worst = 0, worstAt = -1, failures = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const diff = Math.abs(a - e);
    const ok = diff <= tolerance.atol + tolerance.rtol * Math.abs(e);
    if (!(diff <= worst) || Number.isNaN(diff)) {
      worst = Number.isNaN(diff) ? Infinity : diff;
      worstAt = i;
    }
    if (!ok || Number.isNaN(a) !== Number.isNaN(e)) {
      failures++;
      if (bad.length < 8) bad.push(`  [${i}] got ${a}, expected ${e} (diff ${diff})`);
    }
  }
  if (failures > 0) {
    throw new Error(
      `${label}: ${failures} of ${actual.length} values differ ` +
        `(atol ${tolerance.atol}, rtol ${tolerance.rtol}); largest diff ${worst} at [${worstAt}]\n` +
        bad.join("\n"),
    );
  }
}
