import { crc32 } from 'node:zlib';

/**
 * The framing of every record on disk, journal and checkpoint alike:
 *
 *   length  u32 big-endian, bytes of the payload, at least 1
 *   crc     u32 big-endian, CRC-32 of the four length bytes and then of the payload
 *   payload
 *
 * The checksum covers the length, so a damaged length is caught like a damaged payload, and an
 * empty payload is never valid, so a run of zero bytes (what a file system can leave where a
 * write was lost: the size grew, the data never came) never reads as records.
 */
export const HEADER_BYTES = 8;

/** The longest payload a frame may claim (a batch is cut well below it). */
export const MAX_PAYLOAD_BYTES = 0xffff_ffff - HEADER_BYTES;

export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length === 0 || payload.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`a frame payload must have 1 to ${MAX_PAYLOAD_BYTES} bytes`);
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt32BE(crc32(payload, crc32(frame.subarray(0, 4))), 4);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/** The payload of the valid frame at `offset` of `data`, or null if there is none there. */
export function frameAt(data: Buffer, offset: number): Buffer | null {
  if (data.length - offset < HEADER_BYTES) return null;
  const length = data.readUInt32BE(offset);
  if (length === 0 || length > data.length - offset - HEADER_BYTES) return null;
  const payload = data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
  const expected = data.readUInt32BE(offset + 4);
  return crc32(payload, crc32(data.subarray(offset, offset + 4))) === expected ? payload : null;
}

export interface FrameScan {
  /** The payloads of the valid frames from the start, in order. */
  readonly payloads: Buffer[];
  /** Where the valid frames end: the length of the file to keep. */
  readonly validBytes: number;
  /**
   * What follows the valid frames: nothing; a tail with no valid frame in it (`torn`); or a
   * damaged frame with a valid one somewhere after it (`corrupt`, at `validBytes`).
   */
  readonly rest: 'none' | 'torn' | 'corrupt';
}

/**
 * Reads the frames of `data` from the start. At the first invalid one, looks for a valid frame
 * at any later offset: if there is one, the damage is in the middle (`corrupt`); if not, it is a
 * torn tail. The search costs a CRC only at offsets whose length field fits in the file, which
 * are few in damaged or zeroed bytes.
 */
export function scanFrames(data: Buffer): FrameScan {
  const payloads: Buffer[] = [];
  let offset = 0;
  for (let payload = frameAt(data, offset); payload !== null; payload = frameAt(data, offset)) {
    payloads.push(payload);
    offset += HEADER_BYTES + payload.length;
  }
  if (offset === data.length) return { payloads, validBytes: offset, rest: 'none' };
  for (let later = offset + 1; later < data.length; later += 1) {
    if (frameAt(data, later) !== null) return { payloads, validBytes: offset, rest: 'corrupt' };
  }
  return { payloads, validBytes: offset, rest: 'torn' };
}
