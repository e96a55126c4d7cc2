import { readFile, stat } from 'node:fs/promises';
import { MIN_SECRET_BYTES } from '../../adapters/websocket/options.js';
import type { SecretSource } from './args.js';

/** A secret that cannot be loaded; the message names where it was looked for, never its value. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
}

export interface LoadedSecret {
  readonly secret: string;
  /** Things worth telling the operator (a file others can read). */
  readonly warnings: readonly string[];
}

/**
 * Reads the shared secret from a file or an environment variable. One trailing newline (as
 * editors and `echo` add) is dropped from a file; nothing else is changed.
 */
export async function loadSecret(
  source: SecretSource,
  env: Readonly<Record<string, string | undefined>>,
): Promise<LoadedSecret> {
  const warnings: string[] = [];
  let secret: string;
  if (source.kind === 'env') {
    const value = env[source.name];
    if (value === undefined || value === '') {
      throw new SecretError(`the environment variable ${source.name} is not set or is empty`);
    }
    secret = value;
  } else {
    let text: string;
    try {
      text = await readFile(source.path, 'utf8');
      const { mode } = await stat(source.path);
      if ((mode & 0o077) !== 0) {
        warnings.push(`the secret file ${source.path} can be read by other users: chmod 600 it`);
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new SecretError(
        `cannot read the secret file ${source.path}` +
          (typeof code === 'string' ? ` (${code})` : ''),
      );
    }
    secret = text.replace(/\r?\n$/, '');
    if (secret === '') throw new SecretError(`the secret file ${source.path} is empty`);
  }
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) {
    throw new SecretError(`the secret must be at least ${MIN_SECRET_BYTES} bytes long`);
  }
  return { secret, warnings };
}
