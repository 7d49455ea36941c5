// A small LogStore written the way a user would: the whole log in one JSON file, rewritten
// (write to a temporary file, fsync, rename) on every write. It keeps no snapshots, which
// LogStore allows (loadSnapshot/compact are optional as a pair). The argument checks come
// from @raft/core/log-store-checks, so it refuses bad batches exactly like the stores of
// this repository. pack-install.mjs runs the @raft/testkit conformance suite against it.
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { RaftError } from '@raft/core';
import { checkEntries, checkFits, checkHardState, checkRange } from '@raft/core/log-store-checks';

const copy = (e) => ({ index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) });

export class JsonFileLogStore {
  #file;
  #state = null; // { hardState, entries } while open
  #saved = Promise.resolve();

  constructor(dir) {
    this.#file = join(dir, 'log.json');
  }

  #opened() {
    if (this.#state === null) throw new RaftError('RAFT_STORAGE_CLOSED', 'the store is not open');
    return this.#state;
  }

  async open() {
    let saved = { hardState: { term: 0, votedFor: null }, entries: [] };
    try {
      saved = JSON.parse(await readFile(this.#file, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    const entries = saved.entries.map((e) => ({ ...e, data: new Uint8Array(Buffer.from(e.data, 'base64')) }));
    this.#state = { hardState: saved.hardState, entries };
    return { hardState: { ...saved.hardState }, firstIndex: 1, lastIndex: entries.length };
  }

  write(batch) {
    try {
      const state = this.#opened();
      // Validate and apply in call order (synchronously), then save in the same order.
      if (batch.snapshot !== undefined)
        throw new RaftError('RAFT_INVALID_ARGUMENT', 'this store keeps no snapshots');
      const hardState = batch.hardState === undefined ? state.hardState : checkHardState(batch.hardState);
      let entries = state.entries;
      if (batch.entries !== undefined && batch.entries.length > 0) {
        const added = checkEntries(batch.entries);
        const first = added[0];
        checkFits(first, 1, entries.length, first.index >= 2 ? entries[first.index - 2]?.term : undefined);
        entries = [...entries.slice(0, first.index - 1), ...added.map(copy)];
      }
      this.#state = { hardState, entries };
      const json = JSON.stringify({
        hardState,
        entries: entries.map((e) => ({ ...e, data: Buffer.from(e.data).toString('base64') })),
      });
      this.#saved = this.#saved.then(() => this.#save(json));
      return this.#saved;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #save(json) {
    const tmp = `${this.#file}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(json);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file);
  }

  async entries(from, to) {
    const { entries } = this.#opened();
    checkRange(from, to);
    const lo = Math.max(from, 1);
    const hi = Math.min(to, entries.length + 1);
    return lo >= hi ? [] : entries.slice(lo - 1, hi - 1).map(copy);
  }

  async close() {
    await this.#saved.catch(() => {});
    this.#state = null;
  }
}
