// Tree arithmetic on plain numbers. Sizes and indices are JS numbers, not bigint, because the log
// (and the uint64 fields of the protos, generated as number) never get near 2^53 leaves; everything
// else is refused. Bitwise operators are avoided on purpose: they truncate to 32 bits.
import { MerkleRangeError } from './errors.js';

/** Whether `n` is an integer in [0, 2^53). */
export function isTreeSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

export function requireTreeSize(n: number, what: string): void {
  if (!isTreeSize(n)) throw new MerkleRangeError(`${what} must be a non-negative safe integer, got ${n}`);
}

export function isOdd(n: number): boolean {
  return n % 2 === 1;
}

export function half(n: number): number {
  return Math.floor(n / 2);
}

/** The largest power of two strictly below `n` (n ≥ 2): the split point k of RFC 9162 §2.1.1. */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** The largest power of two dividing `n` (n ≥ 1). */
export function lowestSetBit(n: number): number {
  let w = 1;
  while (n % (w * 2) === 0) w *= 2;
  return w;
}
