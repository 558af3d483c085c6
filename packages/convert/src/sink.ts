import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

const BUFFER_BYTES = 1 << 18;

/**
 * Buffered, hashing line writer: lines are encoded straight into a fixed buffer (so the strings die
 * young instead of piling up in the old generation) and written with one syscall per 256 KiB;
 * sha256 is computed on the way out.
 */
export class LineSink {
  private readonly fd: number;
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private readonly hash: Hash = createHash('sha256');
  rows = 0;
  bytes = 0;
  private closed = false;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }

  write(line: string): void {
    this.rows++;
    // A UTF-16 code unit is at most 3 UTF-8 bytes.
    const worst = line.length * 3 + 1;
    if (this.used + worst > BUFFER_BYTES) {
      this.flush();
      if (worst > BUFFER_BYTES) {
        this.out(Buffer.from(`${line}\n`, 'utf8'));
        return;
      }
    }
    this.used += this.buffer.write(line, this.used, 'utf8');
    this.buffer[this.used++] = 10;
  }

  private out(bytes: Buffer): void {
    this.hash.update(bytes);
    this.bytes += bytes.length;
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off);
  }

  private flush(): void {
    if (this.used === 0) return;
    this.out(this.buffer.subarray(0, this.used));
    this.used = 0;
  }

  /** Flushes and closes; returns the file's sha256. */
  close(): string {
    if (this.closed) throw new Error(`${this.path} closed twice`);
    this.flush();
    closeSync(this.fd);
    this.closed = true;
    return this.hash.digest('hex');
  }

  /** Closes without a digest (error paths). */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already gone with its folder
    }
  }
}

/** A typed array that grows by doubling: per-row bookkeeping at a few bytes per row. */
export class GrowableU32 {
  data = new Uint32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  get(i: number): number {
    return this.data[i]!;
  }
}

export class GrowableU8 {
  data = new Uint8Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint8Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  get(i: number): number {
    return this.data[i]!;
  }
}
