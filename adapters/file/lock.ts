import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import process from 'node:process';
import { ConfigError } from '../../lib/errors.js';
import { hasCode, type FileSystem } from './file-system.js';

/**
 * The `LOCK` file that keeps two processes of one host from using a directory at once: two
 * processes on one directory would be one node id in two processes, two voters counted as one,
 * and Paxos is no longer safe. It holds the pid of its owner.
 *
 * Taking it: write our pid to a file of our own, fsync, and `link` it to `LOCK`. A link fails if
 * `LOCK` exists, atomically, and `LOCK` never exists without its content (an O_EXCL create
 * followed by a write could be seen empty by a second process in between).
 *
 * If `LOCK` names a dead process (`kill(pid, 0)` fails with ESRCH), or holds no pid (only a
 * power loss or a person leaves that), the lock is stale and is taken over: under a second lock,
 * `LOCK.takeover` (taken by `link` too), check that `LOCK` still holds what we judged stale, then
 * rename our file over it. Two processes that both judged the same lock stale cannot both take it:
 * the second to get `LOCK.takeover` finds `LOCK` changed and sees the first one alive. A process
 * killed while it holds `LOCK.takeover` (a window of a few system calls) leaves it behind, and
 * every later start refuses with a `ConfigError` saying to remove it.
 *
 * Limits: pids are those of this host (and pid namespace): the lock does not protect a directory
 * on a network file system shared between hosts or containers, and a dead owner's pid reused by
 * an unrelated process makes the lock look held (the error names the pid so an operator can
 * check and remove the file). The operator rule stays: one node id must never run in two
 * processes.
 */
export const LOCK = 'LOCK';
export const LOCK_TAKEOVER = 'LOCK.takeover';
/** Our own file before it becomes `LOCK`: `LOCK.<pid>.<random>.tmp`. */
export const LOCK_TMP = /^LOCK\.(\d+)\.[0-9a-f]+\.tmp$/;

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user. Anything but ESRCH counts as alive.
    return !hasCode(error, 'ESRCH');
  }
}

/** The pid a lock file holds, or null if it holds none. */
export function lockPid(text: string): number | null {
  const match = /^([1-9]\d{0,9})\n?$/.exec(text);
  if (match === null) return null;
  const pid = Number(match[1]);
  return pid <= 0x7fff_ffff ? pid : null;
}

async function readText(fs: FileSystem, path: string): Promise<string | null> {
  try {
    return (await fs.readFile(path)).toString('utf8');
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return null;
    throw error;
  }
}

async function tryLink(fs: FileSystem, from: string, to: string): Promise<boolean> {
  try {
    await fs.link(from, to);
    return true;
  } catch (error) {
    if (hasCode(error, 'EEXIST')) return false;
    throw error;
  }
}

async function unlinkIfPresent(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}

export class DirectoryLock {
  readonly #fs: FileSystem;
  readonly #path: string;
  readonly #content: string;
  #held = true;

  private constructor(fs: FileSystem, path: string, content: string) {
    this.#fs = fs;
    this.#path = path;
    this.#content = content;
  }

  /** Takes the lock of `dir` (which exists), or throws a `ConfigError` naming its holder. */
  static async acquire(fs: FileSystem, dir: string, sync: boolean): Promise<DirectoryLock> {
    const pid = process.pid;
    const content = `${pid}\n`;
    const path = join(dir, LOCK);
    const takeover = join(dir, LOCK_TAKEOVER);
    const mine = join(dir, `${LOCK}.${pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const file = await fs.open(mine, 'exclusive', 0o600);
      try {
        await file.append(Buffer.from(content));
        if (sync) await file.sync();
      } finally {
        await file.close();
      }
      // A few rounds: a holder may release (or a taker take over) between our steps.
      for (let round = 0; round < 3; round += 1) {
        if (await tryLink(fs, mine, path)) return new DirectoryLock(fs, path, content);
        const seen = await readText(fs, path);
        if (seen === null) continue;
        const holder = lockPid(seen);
        if (holder !== null && isProcessAlive(holder)) {
          throw new ConfigError(
            `the storage directory ${dir} is in use by process ${holder}${holder === pid ? ' (this one)' : ''} ` +
              `(its ${path} file); one node id must never run in two processes`,
          );
        }
        if (!(await tryLink(fs, mine, takeover))) {
          const taker = lockPid((await readText(fs, takeover)) ?? '');
          throw new ConfigError(
            `the storage directory ${dir} has a stale lock that process ${taker ?? '(unknown)'} ` +
              `is taking over (${takeover}); if no process is starting on this directory, ` +
              `remove ${takeover}`,
          );
        }
        try {
          if ((await readText(fs, path)) === seen) {
            await fs.rename(mine, path);
            return new DirectoryLock(fs, path, content);
          }
        } finally {
          await fs.unlink(takeover);
        }
      }
      throw new ConfigError(`could not lock the storage directory ${dir}: ${path} kept changing`);
    } finally {
      await unlinkIfPresent(fs, mine);
    }
  }

  /** Removes `LOCK` if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    if ((await readText(this.#fs, this.#path)) === this.#content) {
      await unlinkIfPresent(this.#fs, this.#path);
    }
  }
}
