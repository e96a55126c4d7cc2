import assert from 'node:assert/strict';
import { basename, dirname } from 'node:path';
import {
  FileStorage,
  type AppendFile,
  type FileSystem,
  type OpenHow,
  type StorageCodec,
} from '../../adapters/file/index.js';

/**
 * Crashes at every step of the file storage's work, on a model disk that keeps apart what was
 * written and what was made durable (by fsync of the file, or of the directory for its
 * entries). A crash stops the process at one file operation (that operation fails and so does
 * every later one), and then the disk may come back in any of the states a power loss can leave:
 * each directory entry changed since the directory's last fsync old or new, independently, and
 * the data written since each file's last fsync kept, lost, half kept, or replaced by zeros (the
 * size grew but the data never reached the disk). A process crash alone is the case where
 * everything is kept.
 *
 * From every such state a load must give the saves in order, every acknowledged one included
 * and at most the ones issued; the storage must then take saves again; and a second crash during
 * that recovering load must not change what the next load gives.
 */

const DIR = '/model/node';

class Inode {
  data: Buffer = Buffer.alloc(0);
  synced: Buffer = Buffer.alloc(0);
}

function fault(code: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what}`), { code });
}

/** A disk with one directory of interest; `failAt` is the number of the operation that fails. */
class ModelDisk implements FileSystem {
  entries = new Map<string, Inode>();
  /** The directory's entries as of its last fsync. */
  synced = new Map<string, Inode>();
  dirs = new Set<string>(['/', '/model']);
  /** Directories whose own entry in their parent is durable. */
  durableDirs = new Set<string>(['/', '/model']);
  ops = 0;
  failAt = Infinity;
  dead = false;
  label = '';

  #step(what: string): void {
    if (this.dead || this.ops === this.failAt) {
      this.dead = true;
      throw fault('EIO', `crashed at ${what}`);
    }
    this.ops += 1;
  }

  #inode(path: string): Inode {
    const inode = this.entries.get(path);
    if (inode === undefined) throw fault('ENOENT', path);
    return inode;
  }

  mkdir(path: string): Promise<string | undefined> {
    this.#step('mkdir');
    if (this.dirs.has(path)) return Promise.resolve(undefined);
    assert.ok(this.dirs.has(dirname(path)), 'the model creates one level');
    this.dirs.add(path);
    return Promise.resolve(path);
  }

  readdir(path: string): Promise<string[]> {
    this.#step('readdir');
    return Promise.resolve(
      [...this.entries.keys()].filter((p) => dirname(p) === path).map((p) => basename(p)),
    );
  }

  readFile(path: string): Promise<Buffer> {
    this.#step(`read ${basename(path)}`);
    return Promise.resolve(Buffer.from(this.#inode(path).data));
  }

  open(path: string, how: OpenHow): Promise<AppendFile> {
    this.#step(`open ${basename(path)}`);
    let inode = this.entries.get(path);
    if (inode !== undefined && how === 'exclusive') throw fault('EEXIST', path);
    if (inode === undefined) {
      inode = new Inode();
      this.entries.set(path, inode);
    } else if (how === 'truncate') {
      inode.data = Buffer.alloc(0);
    }
    const file = inode;
    const name = basename(path);
    return Promise.resolve({
      append: (data: Uint8Array) => {
        this.#step(`append ${name}`);
        file.data = Buffer.concat([file.data, data]);
        return Promise.resolve();
      },
      truncate: (length: number) => {
        this.#step(`truncate ${name}`);
        file.data = Buffer.from(file.data.subarray(0, length));
        return Promise.resolve();
      },
      sync: () => {
        this.#step(`fsync ${name}`);
        file.synced = file.data;
        return Promise.resolve();
      },
      close: () => {
        this.#step(`close ${name}`);
        return Promise.resolve();
      },
    });
  }

  rename(from: string, to: string): Promise<void> {
    this.#step(`rename ${basename(from)}`);
    this.entries.set(to, this.#inode(from));
    this.entries.delete(from);
    return Promise.resolve();
  }

  link(existing: string, newPath: string): Promise<void> {
    this.#step('link');
    if (this.entries.has(newPath)) throw fault('EEXIST', newPath);
    this.entries.set(newPath, this.#inode(existing));
    return Promise.resolve();
  }

  unlink(path: string): Promise<void> {
    this.#step(`unlink ${basename(path)}`);
    this.#inode(path);
    this.entries.delete(path);
    return Promise.resolve();
  }

  syncDir(path: string): Promise<void> {
    this.#step('fsync dir');
    if (path === DIR) this.synced = new Map(this.entries);
    for (const dir of this.dirs) if (dirname(dir) === path) this.durableDirs.add(dir);
    return Promise.resolve();
  }

  /**
   * The disks a crash now can leave. Lock files are left out: their owner is this process, alive,
   * where a real crash leaves a dead one's (lock takeover has tests of its own).
   */
  crashImages(): ModelDisk[] {
    const isLock = (path: string): boolean => basename(path).startsWith('LOCK');
    const names = [...new Set([...this.entries.keys(), ...this.synced.keys()])].filter(
      (path) => !isLock(path),
    );
    const changed = names.filter((path) => this.entries.get(path) !== this.synced.get(path));
    assert.ok(changed.length <= 5, `${changed.length} entries changed since the last dir fsync`);
    const images: ModelDisk[] = [];
    for (let subset = 0; subset < 1 << changed.length; subset += 1) {
      for (const data of ['kept', 'lost', 'half', 'zeros'] as const) {
        const image = new ModelDisk();
        image.dirs = new Set(this.dirs);
        image.durableDirs = new Set(this.dirs);
        const copies = new Map<Inode, Inode>();
        for (const path of names) {
          const index = changed.indexOf(path);
          const inode =
            index >= 0 && (subset & (1 << index)) !== 0
              ? this.entries.get(path)
              : index >= 0
                ? this.synced.get(path)
                : this.entries.get(path);
          if (inode === undefined) continue;
          let copy = copies.get(inode);
          if (copy === undefined) {
            copy = new Inode();
            copy.data = afterCrash(inode, data);
            copy.synced = copy.data;
            copies.set(inode, copy);
          }
          image.entries.set(path, copy);
        }
        image.synced = new Map(image.entries);
        image.label = subset === (1 << changed.length) - 1 && data === 'kept' ? 'process' : '';
        images.push(image);
      }
    }
    if (!this.durableDirs.has(DIR)) {
      // The directory itself may be lost, and everything in it.
      const image = new ModelDisk();
      image.dirs = new Set(this.durableDirs);
      images.push(image);
    }
    return images;
  }
}

/** What the disk holds of a file after a power loss. */
function afterCrash(inode: Inode, mode: 'kept' | 'lost' | 'half' | 'zeros'): Buffer {
  const { data, synced } = inode;
  const appended =
    data.length > synced.length && data.subarray(0, synced.length).equals(synced)
      ? data.length - synced.length
      : 0;
  switch (mode) {
    case 'kept':
      return data;
    case 'lost':
      return synced;
    case 'half':
      return data.subarray(0, synced.length + Math.ceil(appended / 2));
    case 'zeros':
      return Buffer.concat([synced, Buffer.alloc(appended)]);
  }
}

/** The state is the list of the numbers saved, in order; updates carry some padding. */
const codec: StorageCodec<number[], number> = {
  reduce: (state, update) => [...(state ?? []), update],
  encodeState: (state) => JSON.stringify(state),
  decodeState: (text) => JSON.parse(text) as number[],
  encodeUpdate: (update) => JSON.stringify({ n: update, pad: 'x'.repeat(12) }),
  decodeUpdate: (text) => (JSON.parse(text) as { n: number }).n,
};

/** A compaction every few saves. */
const OPTIONS = { dir: DIR, compactAfterBytes: 120 };
/**
 * Waves of saves, each awaited whole before the next: a save of a wave is issued after the given
 * number of microtask turns from the previous one, 0 being in the same synchronous run (so it
 * joins the same batch), larger ones landing while a write, an fsync or a compaction is under way.
 */
const WAVES: readonly (readonly number[])[] = [
  [0],
  [0, 0, 0],
  [0, 4],
  [0, 9, 2],
  [0, 0, 15, 30],
  [0],
  [0, 6, 6, 6, 6, 6],
  [0, 25, 1],
  [0, 0],
  [0, 12, 40],
  [0],
];

interface Outcome {
  acked: number;
  issued: number;
  compactions: number;
}

/** Loads, then saves 1, 2, 3… in waves until the disk crashes or the waves end. */
async function run(disk: ModelDisk): Promise<Outcome> {
  const storage = new FileStorage(codec, OPTIONS, disk);
  const outcome: Outcome = { acked: 0, issued: 0, compactions: 0 };
  try {
    assert.equal(await storage.load(), null);
    for (const wave of WAVES) {
      const saves: Promise<void>[] = [];
      for (const turns of wave) {
        for (let turn = 0; turn < turns; turn += 1) await Promise.resolve();
        outcome.issued += 1;
        const n = outcome.issued;
        saves.push(
          storage.save(n).then(() => {
            assert.equal(n, outcome.acked + 1, 'saves resolve in order');
            outcome.acked = n;
          }),
        );
      }
      await Promise.all(saves);
    }
    await storage.close();
  } catch (error) {
    if (!disk.dead) throw error;
  }
  outcome.compactions = storage.stats.compactions;
  return outcome;
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i + 1);
}

/** Loads `disk` and checks the state against `outcome`; returns the state. */
async function recover(disk: ModelDisk, outcome: Outcome, where: string): Promise<number[]> {
  const storage = new FileStorage(codec, OPTIONS, disk);
  const state = (await storage.load()) ?? [];
  await storage.close();
  assert.deepEqual(state, range(state.length), `${where}: the saves in order`);
  assert.ok(
    state.length >= outcome.acked && state.length <= outcome.issued,
    `${where}: ${state.length} saves loaded, ${outcome.acked} acknowledged, ${outcome.issued} issued`,
  );
  return state;
}

describe('FileStorage crashes (model disk)', function () {
  let steps = 0;
  let reference: Outcome;

  before(async function () {
    const disk = new ModelDisk();
    reference = await run(disk);
    steps = disk.ops;
  });

  it('runs the scenario through several compactions without a crash', function () {
    assert.equal(reference.acked, WAVES.flat().length);
    assert.ok(reference.compactions >= 5, `${reference.compactions} compactions`);
    assert.ok(steps > 100, `${steps} file operations`);
  });

  it('loads the saves acknowledged (and at most those issued) after a crash at every step', async function () {
    let images = 0;
    for (let failAt = 0; failAt <= steps; failAt += 1) {
      const disk = new ModelDisk();
      disk.failAt = failAt;
      const outcome = await run(disk);
      for (const [i, image] of disk.crashImages().entries()) {
        const where = `crash at step ${failAt}, image ${i}`;
        const state = await recover(image, outcome, where);
        // The storage takes saves again, after the state it loaded.
        const storage = new FileStorage(codec, OPTIONS, image);
        await storage.load();
        await storage.save(state.length + 1);
        await storage.close();
        assert.deepEqual(
          await recover(
            image,
            { ...outcome, acked: state.length + 1, issued: state.length + 1 },
            where,
          ),
          range(state.length + 1),
        );
        images += 1;
      }
    }
    assert.ok(images > steps * 4, `${images} disks after a crash`);
  });

  it('loads the same state after a second crash during the recovering load', async function () {
    let checked = 0;
    for (let failAt = 0; failAt <= steps; failAt += 1) {
      const disk = new ModelDisk();
      disk.failAt = failAt;
      const outcome = await run(disk);
      const images = disk.crashImages();
      // Two images: everything kept (a process crash), and everything since the last fsyncs lost.
      for (const image of [images.find((i) => i.label === 'process'), images[1]]) {
        assert.ok(image !== undefined);
        const expected = await recover(cloneDisk(image), outcome, `crash at step ${failAt}`);
        for (let again = 0; ; again += 1) {
          const recovering = cloneDisk(image);
          recovering.failAt = again;
          const storage = new FileStorage(codec, OPTIONS, recovering);
          const loaded = await storage.load().then(
            () => true,
            (error: unknown) => {
              if (!recovering.dead) throw error;
              return false;
            },
          );
          if (loaded) break;
          for (const second of recovering.crashImages()) {
            const state = await recover(second, outcome, `crash at ${failAt} then ${again}`);
            assert.deepEqual(state, expected, `crash at ${failAt} then ${again}`);
            checked += 1;
          }
        }
      }
    }
    assert.ok(checked > steps * 10, `${checked} disks after two crashes`);
  });
});

function cloneDisk(disk: ModelDisk): ModelDisk {
  const copy = new ModelDisk();
  copy.dirs = new Set(disk.dirs);
  copy.durableDirs = new Set(disk.durableDirs);
  const copies = new Map<Inode, Inode>();
  const clone = (inode: Inode): Inode => {
    let c = copies.get(inode);
    if (c === undefined) {
      c = new Inode();
      c.data = inode.data;
      c.synced = inode.synced;
      copies.set(inode, c);
    }
    return c;
  };
  for (const [path, inode] of disk.entries) copy.entries.set(path, clone(inode));
  for (const [path, inode] of disk.synced) copy.synced.set(path, clone(inode));
  return copy;
}
