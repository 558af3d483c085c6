// Python/NumPy numerics that LLaMA-Factory's scores depend on, so our numbers match its numbers
// digit for digit rather than "nearly".

/** Characters Python's `str.split()` / `str.rstrip()` treat as whitespace (`str.isspace`). */
const PY_WS = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_RUN = new RegExp(`[${PY_WS}]+`, 'u');
const PY_TRAILING_WS = new RegExp(`[${PY_WS}]+$`, 'u');

/** Python `s.split()`: split on whitespace runs, no empty strings. */
export function pySplit(text: string): string[] {
  return text.split(PY_WS_RUN).filter((part) => part.length > 0);
}

/** Python `s.rstrip()`. */
export function pyRstrip(text: string): string {
  return text.replace(PY_TRAILING_WS, '');
}

/**
 * Python's `round(x, digits)` for floats: correctly rounded from the exact binary value, ties to
 * even (`round(0.03125, 4) == 0.0312`, where `Math.round` would give 0.0313).
 */
export function pyRound(x: number, digits: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return x;
  // toFixed(100) is the exact decimal expansion for every double that can round to non-zero here.
  const exact = Math.abs(x).toFixed(100);
  const [intPart = '0', fracPart = ''] = exact.split('.');
  const kept = intPart + fracPart.slice(0, digits);
  const rest = fracPart.slice(digits);
  const first = rest.charCodeAt(0) - 48;
  const tail = rest.slice(1);
  const lastKept = kept.charCodeAt(kept.length - 1) - 48;
  const up = first > 5 || (first === 5 && /[1-9]/.test(tail)) || (first === 5 && lastKept % 2 === 1);
  let scaled = BigInt(kept);
  if (up) scaled += 1n;
  const text = scaled.toString().padStart(digits + 1, '0');
  const decimal = digits > 0 ? `${text.slice(0, text.length - digits)}.${text.slice(text.length - digits)}` : text;
  const value = Number(decimal);
  return x < 0 ? -value : value;
}

/** NumPy's pairwise summation of a contiguous float64 array (what `np.sum`/`np.mean` do). */
function pairwiseSum(values: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[start + i]!;
    return sum;
  }
  if (n <= 128) {
    const r = values.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let k = 0; k < 8; k++) r[k]! += values[start + i + k]!;
    }
    let sum = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) sum += values[start + i]!;
    return sum;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, n - half);
}

/** `float(np.mean(values))`; NaN for an empty list, as NumPy gives. */
export function npMean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return pairwiseSum(values, 0, values.length) / values.length;
}

/** Python's `math.fsum`: the correctly rounded sum (Shewchuk's exact partials). */
export function fsum(values: Iterable<number>): number {
  const partials: number[] = [];
  for (let x of values) {
    let i = 0;
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  // Sum the partials from the top, with the half-way correction CPython applies.
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n]!;
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    const yr = x - hi;
    if (y === yr) hi = x;
  }
  return hi;
}
