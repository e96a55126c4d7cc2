/**
 * Snapshots travel in parts, each well under a frame's `maxPayload`: the text's UTF-8 bytes are
 * cut into pieces of SNAPSHOT_PART_BYTES and sent as base64 (no JSON escaping can make a part
 * grow past the frame limit). The receiver pulls the parts one window at a time, so a snapshot
 * of megabytes never floods a connection.
 */

/** Bytes of snapshot per part: 4/3 of it in base64 stays far below a 64 KiB frame. */
export const SNAPSHOT_PART_BYTES = 36 * 1024;
/** Longest base64 text of one part. */
export const MAX_SNAPSHOT_PART_CHARS = (SNAPSHOT_PART_BYTES / 3) * 4;
/** The most parts one snapshot may have: 36 KiB × 16,384 = 576 MiB. */
export const MAX_SNAPSHOT_PARTS = 16_384;

const encoder = new TextEncoder();

/** A snapshot cut into parts, ready to serve: taken once, served to every peer that asks. */
export class SnapshotParts {
  readonly slot: number;
  readonly #bytes: Uint8Array;
  readonly parts: number;

  constructor(slot: number, text: string) {
    this.slot = slot;
    this.#bytes = encoder.encode(text);
    this.parts = Math.max(1, Math.ceil(this.#bytes.length / SNAPSHOT_PART_BYTES));
  }

  get bytes(): number {
    return this.#bytes.length;
  }

  /** Part `index` (0-based) in base64. */
  part(index: number): string {
    const start = index * SNAPSHOT_PART_BYTES;
    return toBase64(this.#bytes.subarray(start, start + SNAPSHOT_PART_BYTES));
  }
}

/**
 * Collects the parts of one snapshot as they arrive, in any order and with duplicates. Invalid
 * parts (bad base64, a part count that changes) are refused; `text()` decodes strictly.
 */
export class SnapshotAssembly {
  readonly slot: number;
  readonly parts: number;
  readonly from: string;
  readonly #received: (Uint8Array | undefined)[];
  #count = 0;

  constructor(from: string, slot: number, parts: number) {
    this.from = from;
    this.slot = slot;
    this.parts = parts;
    this.#received = new Array<Uint8Array | undefined>(parts);
  }

  /** Adds a part; returns false if it does not belong (other count, bad data). */
  add(part: number, parts: number, data: string): boolean {
    if (parts !== this.parts || part < 0 || part >= parts) return false;
    if (this.#received[part] !== undefined) return true;
    const bytes = fromBase64(data);
    if (bytes === null) return false;
    const full = part < parts - 1;
    if ((full && bytes.length !== SNAPSHOT_PART_BYTES) || bytes.length > SNAPSHOT_PART_BYTES) {
      return false;
    }
    this.#received[part] = bytes;
    this.#count += 1;
    return true;
  }

  get complete(): boolean {
    return this.#count === this.parts;
  }

  /** The first parts not yet received, at most `limit` of them. */
  missing(limit: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.parts && out.length < limit; i++) {
      if (this.#received[i] === undefined) out.push(i);
    }
    return out;
  }

  /** The whole text, or null if it is not valid UTF-8. Call once complete. */
  text(): string | null {
    let length = 0;
    for (const b of this.#received) length += b?.length ?? 0;
    const all = new Uint8Array(length);
    let at = 0;
    for (const b of this.#received) {
      if (b === undefined) return null;
      all.set(b, at);
      at += b.length;
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(all);
    } catch {
      return null;
    }
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += ALPHABET.charAt(n >>> 18) + ALPHABET.charAt((n >>> 12) & 63);
    out += ALPHABET.charAt((n >>> 6) & 63) + ALPHABET.charAt(n & 63);
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = ((bytes[i] ?? 0) << 16) | (rest === 2 ? (bytes[i + 1] ?? 0) << 8 : 0);
    out += ALPHABET.charAt(n >>> 18) + ALPHABET.charAt((n >>> 12) & 63);
    out += rest === 2 ? ALPHABET.charAt((n >>> 6) & 63) + '=' : '==';
  }
  return out;
}

/** Strict base64 decoding: null on any character outside the alphabet or bad padding. */
export function fromBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      const last = i + 4 === text.length;
      if (c === 61 /* = */ && last && j >= 4 - pad) {
        n <<= 6;
        continue;
      }
      const v = c < 128 ? (LOOKUP[c] ?? -1) : -1;
      if (v < 0) return null;
      n = (n << 6) | v;
    }
    if (o < out.length) out[o++] = (n >>> 16) & 255;
    if (o < out.length) out[o++] = (n >>> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}
