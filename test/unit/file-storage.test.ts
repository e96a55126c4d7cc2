import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import {
  CorruptStorageError,
  FileStorage,
  StorageFailedError,
  type FileStorageOptions,
  type FileSystem,
  type StorageCodec,
} from '../../adapters/file/index.js';
import { nodeFileSystem } from '../../adapters/file/file-system.js';
import { ConfigError, InvariantError, NotStartedError } from '../../lib/errors.js';
import { createRng, randomInt } from '../../lib/random.js';
import type { Storage } from '../../lib/storage.js';

/** The state is the list of the numbers saved, in order. */
const codec: StorageCodec<number[], number> = {
  reduce: (state, update) => {
    if (!Number.isInteger(update)) throw new TypeError(`not a whole number: ${update}`);
    return [...(state ?? []), update];
  },
  encodeState: (state) => JSON.stringify(state),
  decodeState: (text) => {
    const state: unknown = JSON.parse(text);
    if (!Array.isArray(state)) throw new TypeError('not a list');
    return state as number[];
  },
  encodeUpdate: (update) => JSON.stringify({ n: update }),
  decodeUpdate: (text) => {
    const { n } = JSON.parse(text) as { n: unknown };
    if (typeof n !== 'number') throw new TypeError('no number');
    return n;
  },
};

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A tail of bytes that are not a record: not zeros, no valid frame in them. */
function garbage(length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 37 + 11) & 0xff));
}

/**
 * The real file system, but `hold()` makes the next fsync of a file wait until `release` is
 * called; `entered` resolves once that fsync has been reached.
 */
function holdingFileSystem(): {
  fileSystem: FileSystem;
  hold: () => { entered: Promise<void>; release: () => void };
} {
  let held: { enter: () => void; wait: Promise<void> } | null = null;
  const fileSystem: FileSystem = {
    ...nodeFileSystem,
    async open(path, how, mode) {
      const file = await nodeFileSystem.open(path, how, mode);
      return {
        ...file,
        async sync() {
          const current = held;
          held = null;
          if (current !== null) {
            current.enter();
            await current.wait;
          }
          await file.sync();
        },
      };
    },
  };
  const hold = (): { entered: Promise<void>; release: () => void } => {
    let enter: () => void = () => undefined;
    let release: () => void = () => undefined;
    const entered = new Promise<void>((resolve) => (enter = resolve));
    const wait = new Promise<void>((resolve) => (release = resolve));
    held = { enter, wait };
    return { entered, release };
  };
  return { fileSystem, hold };
}

async function spawnedPid(script: string): Promise<{ pid: number; exited: Promise<void> }> {
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  assert.ok(child.pid !== undefined);
  return { pid: child.pid, exited };
}

describe('FileStorage', function () {
  let root: string;
  let dir: string;
  const open: FileStorage<number[], number>[] = [];

  /** A storage on `dir`, closed after the test if the test leaves it open. */
  function storage(
    options: Partial<FileStorageOptions> = {},
    fileSystem?: FileSystem,
  ): FileStorage<number[], number> {
    const made = new FileStorage(codec, { dir, ...options }, fileSystem);
    open.push(made);
    return made;
  }

  async function reload(options: Partial<FileStorageOptions> = {}): Promise<number[] | null> {
    const again = storage(options);
    const state = await again.load();
    await again.close();
    return state;
  }

  async function saveAll(target: FileStorage<number[], number>, numbers: number[]): Promise<void> {
    for (const n of numbers) await target.save(n);
  }

  function files(): string[] {
    return readdirSync(dir).sort();
  }

  beforeEach(function () {
    root = mkdtempSync(join(tmpdir(), 'synod-file-storage-'));
    dir = join(root, 'node');
  });

  afterEach(async function () {
    for (const made of open.splice(0)) await made.close().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  describe('saving and loading', function () {
    it('loads null from a new directory, created with mode 0o700, its files with 0o600', async function () {
      dir = join(root, 'a', 'b', 'node');
      const first = storage();
      assert.equal(await first.load(), null);
      await first.save(1);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      for (const name of files()) {
        assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, name);
      }
      await first.close();
    });

    it('round-trips: what was saved is what a new instance loads', async function () {
      const first = storage();
      await first.load();
      await saveAll(first, [3, 1, 2]);
      await first.close();
      assert.deepEqual(await reload(), [3, 1, 2]);
    });

    it('loads the fold of every update after many saves, batched or not, with compactions', async function () {
      const rng = createRng(7);
      const first = storage({ compactAfterBytes: 2048 });
      await first.load();
      let next = 1;
      while (next <= 3000) {
        // Waves of up to 40 saves, some issued while the previous wave is still being written.
        const wave: Promise<void>[] = [];
        for (let i = randomInt(rng, 1, 40); i > 0 && next <= 3000; i -= 1) {
          wave.push(first.save(next));
          next += 1;
          if (rng.next() < 0.2) await new Promise((resolve) => setImmediate(resolve));
        }
        await Promise.all(wave);
      }
      await first.close();
      assert.ok(first.stats.compactions >= 10, `${first.stats.compactions} compactions`);
      assert.equal(first.stats.saves, 3000);
      assert.deepEqual(await reload(), range(1, 3000));
    });

    it('is a Storage<R> when the update replaces the state', async function () {
      const replace: StorageCodec<string, string> = {
        reduce: (_, update) => update,
        encodeState: (state) => state,
        decodeState: (text) => text,
        encodeUpdate: (update) => update,
        decodeUpdate: (text) => text,
      };
      const first = new FileStorage(replace, { dir });
      const asStorage: Storage<string> = first;
      assert.equal(await asStorage.load(), null);
      await asStorage.save('a');
      await asStorage.save('b');
      await first.close();
      const second = new FileStorage(replace, { dir });
      assert.equal(await second.load(), 'b');
      await second.close();
    });

    it('rejects a save whose update the codec refuses, writes nothing, and takes later saves', async function () {
      const first = storage();
      await first.load();
      await first.save(1);
      await assert.rejects(first.save(1.5), TypeError);
      await first.save(2);
      await first.close();
      assert.deepEqual(await reload(), [1, 2]);
    });

    it('rejects a save before load (InvariantError) and after close (NotStartedError); load runs once', async function () {
      const first = storage();
      await assert.rejects(first.save(1), InvariantError);
      await first.load();
      await assert.rejects(first.load(), InvariantError);
      await first.close();
      await first.close();
      await assert.rejects(first.save(1), NotStartedError);
    });

    it('lets the saves made before close finish, and refuses those made after it', async function () {
      const first = storage();
      await first.load();
      const saves = range(1, 20).map((n) => first.save(n));
      const closed = first.close();
      await assert.rejects(first.save(21), NotStartedError);
      await closed;
      await Promise.all(saves);
      assert.deepEqual(await reload(), range(1, 20));
    });

    it('with fsync: false, makes no fsync at all', async function () {
      const first = storage({ fsync: false, compactAfterBytes: 64 });
      await first.load();
      await Promise.all(range(1, 50).map((n) => first.save(n)));
      await first.close(); // after the compaction that follows the batch
      assert.ok(first.stats.compactions > 0);
      assert.equal(first.stats.fsyncs, 0);
      assert.deepEqual(await reload(), range(1, 50));
    });
  });

  describe('group commit', function () {
    it('covers 100 concurrent saves with one fsync, resolving them all, in order', async function () {
      const first = storage();
      await first.load();
      const before = first.stats;
      const resolved: number[] = [];
      await Promise.all(range(1, 100).map((n) => first.save(n).then(() => resolved.push(n))));
      const after = first.stats;
      assert.deepEqual(resolved, range(1, 100));
      assert.equal(after.saves - before.saves, 100);
      assert.equal(after.fsyncs - before.fsyncs, 1);
      await first.close();
      assert.deepEqual(await reload(), range(1, 100));
    });

    it('writes the saves made during an fsync together, after it, under one more fsync', async function () {
      const { fileSystem: holding, hold } = holdingFileSystem();
      const first = storage({}, holding);
      await first.load();
      const { entered, release } = hold();
      let firstDone = false;
      const firstSave = first.save(1).then(() => (firstDone = true));
      await entered;
      const order: number[] = [];
      const rest = range(2, 30).map((n) => first.save(n).then(() => order.push(n)));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(firstDone, false, 'the first save waits for its fsync');
      assert.deepEqual(order, [], 'the later saves wait for the fsync in flight');
      const fsyncs = first.stats.fsyncs;
      release();
      await Promise.all([firstSave, ...rest]);
      assert.deepEqual(order, range(2, 30));
      assert.equal(first.stats.fsyncs - fsyncs, 2, 'the held fsync and one for the 29 others');
      await first.close();
      assert.deepEqual(await reload(), range(1, 30));
    });
  });

  describe('disk failures', function () {
    it('rejects the save whose fsync fails and every later one with one StorageFailedError', async function () {
      let failing = false;
      const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      const faulty: FileSystem = {
        ...nodeFileSystem,
        async open(path, how, mode) {
          const file = await nodeFileSystem.open(path, how, mode);
          return {
            ...file,
            sync: () => (failing ? Promise.reject(eio) : file.sync()),
          };
        },
      };
      const first = storage({}, faulty);
      await first.load();
      await saveAll(first, [1, 2]);
      failing = true;
      const failed = first.save(3);
      const queued = first.save(4);
      const errors = await Promise.all(
        [failed, queued].map((save) => save.catch((e: unknown) => e)),
      );
      failing = false;
      const [error] = errors;
      assert.ok(error instanceof StorageFailedError);
      assert.equal(error.code, 'SYNOD_STORAGE_FAILED');
      assert.equal(error.cause, eio);
      assert.equal(errors[1], error);
      // The disk works again, but nothing can tell what reached it: the storage stays halted.
      await assert.rejects(first.save(5), (e) => e === error);
      assert.equal(first.stats.saves, 2);
      await first.close();
      const state = await reload();
      assert.deepEqual(state?.slice(0, 2), [1, 2]);
    });
  });

  describe('torn tails and corruption', function () {
    const journal = (): string => join(dir, 'journal-0');

    it('cuts a torn last record at every byte offset, keeping the records before it', async function () {
      const first = storage();
      await first.load();
      await saveAll(first, [1, 2, 3, 4]);
      const kept = statSync(journal()).size;
      await first.save(5);
      await first.close();
      const whole = readFileSync(journal());
      assert.ok(whole.length - kept > 10);
      for (let cut = kept; cut < whole.length; cut += 1) {
        writeFileSync(journal(), whole.subarray(0, cut));
        const torn = storage();
        assert.deepEqual(await torn.load(), [1, 2, 3, 4], `cut at ${cut}`);
        assert.equal(statSync(journal()).size, kept, `cut at ${cut}: the tail is gone`);
        await torn.save(6);
        await torn.close();
        assert.deepEqual(await reload(), [1, 2, 3, 4, 6], `cut at ${cut}`);
      }
    });

    it('cuts a tail of zeros or garbage after the last record', async function () {
      const first = storage();
      await first.load();
      await saveAll(first, [1, 2, 3]);
      await first.close();
      const size = statSync(journal()).size;
      appendFileSync(journal(), Buffer.alloc(4096));
      assert.deepEqual(await reload(), [1, 2, 3]);
      assert.equal(statSync(journal()).size, size);
      appendFileSync(journal(), garbage(300));
      assert.deepEqual(await reload(), [1, 2, 3]);
      assert.equal(statSync(journal()).size, size);
    });

    it('rejects a damaged record followed by valid ones, and changes no file', async function () {
      const first = storage();
      await first.load();
      await saveAll(first, [1, 2, 3, 4]);
      await first.close();
      const whole = readFileSync(journal());
      const second = whole.readUInt32BE(0) + 8;
      // A byte of the second record's payload, then of its length.
      for (const offset of [second + 12, second + 2]) {
        const damaged = Buffer.from(whole);
        damaged[offset] = (damaged[offset] ?? 0) ^ 0x40;
        writeFileSync(journal(), damaged);
        const broken = storage();
        const error = await broken.load().catch((e: unknown) => e);
        assert.ok(error instanceof CorruptStorageError, String(error));
        assert.equal(error.code, 'SYNOD_STORAGE_CORRUPT');
        assert.match(error.message, /journal-0/);
        assert.match(error.message, new RegExp(`byte ${second}\\b`));
        assert.deepEqual(readFileSync(journal()), damaged);
        assert.deepEqual(files(), ['journal-0'], 'the lock is released');
      }
    });

    it('rejects a damaged checkpoint', async function () {
      const first = storage({ compactAfterBytes: 30 });
      await first.load();
      await saveAll(first, [1, 2, 3]);
      await first.close();
      assert.ok(files().includes('checkpoint'));
      const path = join(dir, 'checkpoint');
      const whole = readFileSync(path);
      for (const offset of [0, 9, whole.length - 1]) {
        const damaged = Buffer.from(whole);
        damaged[offset] = (damaged[offset] ?? 0) ^ 1;
        writeFileSync(path, damaged);
        await assert.rejects(reload({ compactAfterBytes: 30 }), CorruptStorageError);
      }
      writeFileSync(path, whole.subarray(0, whole.length - 1));
      await assert.rejects(reload({ compactAfterBytes: 30 }), CorruptStorageError);
    });

    it('rejects stored text the codec refuses', async function () {
      const first = storage();
      await first.load();
      await first.save(1);
      await first.close();
      const strict = new FileStorage(
        { ...codec, decodeUpdate: () => assert.fail('refused') },
        { dir },
      );
      await assert.rejects(
        strict.load(),
        (e) => e instanceof CorruptStorageError && e.message.includes('refused'),
      );
    });
  });

  describe('compaction', function () {
    it('checkpoints past compactAfterBytes, keeps one journal, and loads the same state', async function () {
      const first = storage({ compactAfterBytes: 100 });
      await first.load();
      await saveAll(first, range(1, 40));
      assert.ok(first.stats.compactions >= 5, `${first.stats.compactions} compactions`);
      await first.close();
      const journals = files().filter((name) => name.startsWith('journal-'));
      assert.deepEqual(journals, [`journal-${first.stats.compactions}`]);
      assert.deepEqual(files(), ['checkpoint', journals[0]]);
      assert.deepEqual(await reload({ compactAfterBytes: 100 }), range(1, 40));
      // With the default threshold, the state loads all the same.
      assert.deepEqual(await reload(), range(1, 40));
    });

    it('checkpoints the saves written, not those made while the write crossing the threshold ran', async function () {
      const { fileSystem, hold } = holdingFileSystem();
      const first = storage({ compactAfterBytes: 30 }, fileSystem);
      await first.load();
      const { entered, release } = hold();
      // One batch of two records, above the threshold; its fsync waits while 3 is saved (one
      // record, below the threshold: no second compaction that would hide a wrong first one).
      const saves = [first.save(1), first.save(2)];
      await entered;
      saves.push(first.save(3));
      release();
      await Promise.all(saves);
      await first.close();
      assert.equal(first.stats.compactions, 1);
      assert.deepEqual(await reload({ compactAfterBytes: 30 }), [1, 2, 3]);
    });

    it('compacts at load a journal already past the threshold', async function () {
      const first = storage();
      await first.load();
      await saveAll(first, range(1, 10));
      await first.close();
      const second = storage({ compactAfterBytes: 50 });
      assert.deepEqual(await second.load(), range(1, 10));
      assert.equal(second.stats.compactions, 1);
      await second.close();
      assert.deepEqual(files(), ['checkpoint', 'journal-1']);
    });

    it('removes what a crash in a compaction leaves: checkpoint.tmp, an empty newer journal, an older one', async function () {
      const first = storage({ compactAfterBytes: 40 });
      await first.load();
      await saveAll(first, range(1, 6));
      await first.close();
      const generation = first.stats.compactions;
      assert.ok(generation >= 2);
      writeFileSync(join(dir, 'checkpoint.tmp'), garbage(20));
      writeFileSync(join(dir, `journal-${generation + 1}`), '');
      writeFileSync(join(dir, `journal-${generation - 1}`), garbage(50));
      assert.deepEqual(await reload({ compactAfterBytes: 40 }), range(1, 6));
      assert.deepEqual(files(), ['checkpoint', `journal-${generation}`]);
    });

    it('refuses a journal the checkpoint names that is missing, or a newer one with records', async function () {
      const first = storage({ compactAfterBytes: 40 });
      await first.load();
      await saveAll(first, range(1, 6));
      await first.close();
      const current = join(dir, `journal-${first.stats.compactions}`);
      const newer = join(dir, `journal-${first.stats.compactions + 1}`);
      writeFileSync(newer, garbage(10));
      await assert.rejects(
        reload(),
        (e) => e instanceof CorruptStorageError && e.message.includes('newer'),
      );
      rmSync(newer);
      rmSync(current);
      await assert.rejects(
        reload(),
        (e) => e instanceof CorruptStorageError && e.message.includes('missing'),
      );
      rmSync(join(dir, 'checkpoint'));
      writeFileSync(newer, '');
      await assert.rejects(
        reload(),
        (e) => e instanceof CorruptStorageError && e.message.includes('missing'),
      );
    });
  });

  describe('the lock', function () {
    it('refuses a second instance on the directory, naming it and the pid', async function () {
      const first = storage();
      await first.load();
      const error = await storage()
        .load()
        .catch((e: unknown) => e);
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.includes(dir));
      assert.ok(error.message.includes(`process ${process.pid}`));
      assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${process.pid}\n`);
      await first.save(1);
      await first.close();
      assert.ok(!existsSync(join(dir, 'LOCK')), 'close removes the lock');
      assert.deepEqual(await reload(), [1]);
    });

    it('refuses a directory locked by another live process', async function () {
      const { pid, exited } = await spawnedPid('setTimeout(() => {}, 30000)');
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'LOCK'), `${pid}\n`);
        const error = await storage()
          .load()
          .catch((e: unknown) => e);
        assert.ok(error instanceof ConfigError, String(error));
        assert.ok(error.message.includes(dir) && error.message.includes(`process ${pid}`));
        assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${pid}\n`);
      } finally {
        process.kill(pid, 'SIGKILL');
        await exited;
      }
    });

    it('takes over the lock of a dead process, or one holding no pid', async function () {
      const { pid, exited } = await spawnedPid('');
      await exited;
      mkdirSync(dir, { recursive: true });
      for (const stale of [`${pid}\n`, '', 'not a pid']) {
        writeFileSync(join(dir, 'LOCK'), stale);
        const taker = storage();
        assert.equal(await taker.load(), null);
        assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${process.pid}\n`);
        await taker.close();
        assert.deepEqual(files(), ['journal-0']);
      }
    });

    it('refuses a stale lock while a takeover file is present, saying to remove it', async function () {
      const { pid, exited } = await spawnedPid('');
      await exited;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'LOCK'), `${pid}\n`);
      writeFileSync(join(dir, 'LOCK.takeover'), `${pid}\n`);
      const error = await storage()
        .load()
        .catch((e: unknown) => e);
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /remove .*LOCK\.takeover/);
      rmSync(join(dir, 'LOCK.takeover'));
      assert.equal(await reload(), null);
    });

    it('removes the lock files a dead process left before it linked them', async function () {
      const { pid, exited } = await spawnedPid('');
      await exited;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `LOCK.${pid}.0a1b.tmp`), `${pid}\n`);
      assert.equal(await reload(), null);
      assert.deepEqual(files(), ['journal-0']);
    });
  });

  describe('options', function () {
    const bad: [string, unknown, RegExp][] = [
      ['not an object', 'dir', /must be an object/],
      ['no dir', {}, /dir must be/],
      ['an empty dir', { dir: '' }, /dir must be/],
      ['a dir with NUL', { dir: 'a\0b' }, /dir must be/],
      [
        'an unknown key',
        { dir: 'x', fsynk: true },
        /unknown FileStorage option "fsynk".*dir, compactAfterBytes, fsync/,
      ],
      ['compactAfterBytes 0', { dir: 'x', compactAfterBytes: 0 }, /compactAfterBytes/],
      ['compactAfterBytes 1.5', { dir: 'x', compactAfterBytes: 1.5 }, /compactAfterBytes/],
      ['compactAfterBytes "8"', { dir: 'x', compactAfterBytes: '8' }, /compactAfterBytes/],
      ['compactAfterBytes 2 GiB', { dir: 'x', compactAfterBytes: 2 ** 31 }, /compactAfterBytes/],
      ['fsync "yes"', { dir: 'x', fsync: 'yes' }, /fsync must be a boolean/],
    ];
    for (const [what, options, message] of bad) {
      it(`refuses ${what} with a ConfigError`, function () {
        assert.throws(
          () => new FileStorage(codec, options as FileStorageOptions),
          (e) => e instanceof ConfigError && message.test(e.message),
        );
      });
    }

    it('refuses a codec without its methods', function () {
      const partial: Partial<typeof codec> = { ...codec };
      delete partial.decodeState;
      assert.throws(
        () => new FileStorage(partial as typeof codec, { dir: 'x' }),
        (e) => e instanceof ConfigError && e.message.includes('decodeState'),
      );
    });

    it('touches no file before load', function () {
      storage();
      assert.ok(!existsSync(dir));
    });
  });
});
