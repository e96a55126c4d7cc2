import { link, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';

/**
 * The few file operations the file storage uses, and nothing more: the storage takes them as a
 * parameter so that tests can run it on a model disk that loses what was not fsynced, failing at
 * any step. `nodeFileSystem` is the real one. Errors carry the usual `code` (`ENOENT`, `EEXIST`).
 */
export interface FileSystem {
  /** Creates `path` and its missing parents; the first directory created, or undefined. */
  mkdir(path: string, mode: number): Promise<string | undefined>;
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
  /**
   * Opens a file to append to: `append` keeps what it holds (creating it if missing), `truncate`
   * empties it (creating it if missing), `exclusive` creates it and fails with `EEXIST` if it
   * exists. `mode` applies when the file is created.
   */
  open(path: string, how: OpenHow, mode: number): Promise<AppendFile>;
  /** Replaces `to` atomically. */
  rename(from: string, to: string): Promise<void>;
  /** A second name for a file; fails with `EEXIST` if `newPath` exists (atomically). */
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes the directory's entries (files created, renamed, removed in it) durable. */
  syncDir(path: string): Promise<void>;
}

export type OpenHow = 'append' | 'truncate' | 'exclusive';

export interface AppendFile {
  /** Writes all of `data` at the end of the file. */
  append(data: Uint8Array): Promise<void>;
  truncate(length: number): Promise<void>;
  /** fsync: what was written is durable once this resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

const FLAGS: Readonly<Record<OpenHow, string>> = { append: 'a', truncate: 'w', exclusive: 'wx' };

export const nodeFileSystem: FileSystem = {
  mkdir: (path, mode) => mkdir(path, { recursive: true, mode }),
  readdir: (path) => readdir(path),
  readFile: (path) => readFile(path),
  async open(path, how, mode) {
    const handle = await open(path, FLAGS[how], mode);
    return {
      async append(data) {
        // O_APPEND: every write goes to the end; a short write is continued, never dropped.
        for (let done = 0; done < data.length;) {
          const { bytesWritten } = await handle.write(data, done, data.length - done);
          done += bytesWritten;
        }
      },
      truncate: (length) => handle.truncate(length),
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
  rename: (from, to) => rename(from, to),
  link: (existing, newPath) => link(existing, newPath),
  unlink: (path) => unlink(path),
  async syncDir(path) {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Whether `error` is a file system error with this `code`. */
export function hasCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
