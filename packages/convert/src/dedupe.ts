/**
 * Exact-duplicate detection in bounded memory: rows are identified by a 96-bit hash of their
 * canonical output line, kept in an open-addressing table of typed arrays (16 bytes per slot, at
 * most half full: about 32 bytes per distinct row) instead of a Set of strings (80+ bytes per row).
 * Three independent 32-bit lanes make an accidental collision between two different rows
 * vanishingly unlikely (about n² / 2^97: 1e-17 for a million rows); a flagged row names the
 * record it duplicates, so any report can be checked by hand.
 */

const fmix32 = (h: number): number => {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** The three hash lanes of a string (written into `out`, which is returned). */
export function hash96(text: string, out: Uint32Array = new Uint32Array(3)): Uint32Array {
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x9747b28c | 0;
  let h3 = 0x27d4eb2f | 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
    h3 = Math.imul(h3 + c, 0x9e3779b1);
    h3 = (h3 << 13) | (h3 >>> 19);
  }
  out[0] = fmix32(h1 ^ text.length);
  out[1] = fmix32(h2);
  out[2] = fmix32(h3 + 0x68e31da4);
  return out;
}

class Shard {
  private keys: Uint32Array;
  private values: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(initialCapacity: number) {
    let cap = 16;
    while (cap < initialCapacity) cap <<= 1;
    this.keys = new Uint32Array(cap * 3);
    this.values = new Uint32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /**
   * Records `id` under the hash; returns `-1` when the hash is new, else the id stored first.
   * Ids must be below 2^32 - 1 (the empty-slot value).
   */
  addOrGet(h: Uint32Array, id: number): number {
    const a = h[0]!;
    const b = h[1]!;
    const c = h[2]!;
    const keys = this.keys;
    const values = this.values;
    let slot = (a ^ Math.imul(b, 0x9e3779b1)) & this.mask;
    for (;;) {
      const stored = values[slot]!;
      if (stored === 0) break;
      const k = slot * 3;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c) return stored - 1;
      slot = (slot + 1) & this.mask;
    }
    const k = slot * 3;
    keys[k] = a;
    keys[k + 1] = b;
    keys[k + 2] = c;
    values[slot] = id + 1;
    this.count++;
    if (this.count * 2 > this.mask + 1) this.grow();
    return -1;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const cap = (this.mask + 1) * 2;
    this.keys = new Uint32Array(cap * 3);
    this.values = new Uint32Array(cap);
    this.mask = cap - 1;
    for (let s = 0; s < oldValues.length; s++) {
      const v = oldValues[s]!;
      if (v === 0) continue;
      const a = oldKeys[s * 3]!;
      const b = oldKeys[s * 3 + 1]!;
      let slot = (a ^ Math.imul(b, 0x9e3779b1)) & this.mask;
      while (this.values[slot] !== 0) slot = (slot + 1) & this.mask;
      this.keys[slot * 3] = a;
      this.keys[slot * 3 + 1] = b;
      this.keys[slot * 3 + 2] = oldKeys[s * 3 + 2]!;
      this.values[slot] = v;
    }
  }
}

/** Seeded 32-bit sort key of a row hash: the split order is a function of content and seed only. */
export function shuffleKey(h: Uint32Array, seed: number): number {
  return fmix32((h[0]! ^ fmix32(seed ^ 0x5f3759df)) + Math.imul(h[1]!, 0x27d4eb2d) + (h[2]! >>> 7));
}

/** A seed mixed with a string (the source name), so sources are shuffled independently. */
export function mixSeed(seed: number, salt: string): number {
  return fmix32(hash96(`${seed}\u0000${salt}`)[0]! ^ seed);
}

/**
 * The table is split into 64 shards by hash so that growing never copies more than a sixtyfourth of
 * it at once: a single table doubling from 2^20 to 2^21 slots would briefly hold 50 MB.
 */
export class DedupeTable {
  private readonly shards: Shard[];
  constructor(initialCapacity = 1 << 12) {
    this.shards = Array.from({ length: 64 }, () => new Shard(initialCapacity / 64));
  }
  get size(): number {
    return this.shards.reduce((n, s) => n + s.size, 0);
  }
  /** Records `id` under the hash; returns `-1` when the hash is new, else the id stored first. */
  addOrGet(h: Uint32Array, id: number): number {
    return this.shards[h[2]! >>> 26]!.addOrGet(h, id);
  }
}
