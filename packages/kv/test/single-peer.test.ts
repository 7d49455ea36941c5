import {
  startPeer,
  stopPeer,
  type LogEntry,
  type LogStore,
  type LogStoreState,
  type LogWrite,
  type Peer,
  type RaftMessage,
  type Transport,
} from '@raft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { cas, del, get, KVStore, set, type KVCommand, type KVQuery, type KVReply } from '../src/index.js';

/** The least LogStore that works: memory only. (@raft/log-memory is the real one.) */
function memoryLog(): LogStore {
  let hardState = { term: 0, votedFor: null as string | null };
  let entries: LogEntry[] = [];
  return {
    open: (): Promise<LogStoreState> =>
      Promise.resolve({ hardState, firstIndex: 1, lastIndex: entries.length }),
    write(batch: LogWrite): Promise<void> {
      if (batch.hardState) hardState = batch.hardState;
      const first = batch.entries?.[0];
      if (first !== undefined) entries = [...entries.slice(0, first.index - 1), ...batch.entries!];
      return Promise.resolve();
    },
    entries: (from: number, to: number) =>
      Promise.resolve(entries.filter((e) => e.index >= from && e.index < to)),
    close: () => Promise.resolve(),
  };
}

/** A one-peer cluster sends nothing. */
function noTransport(): Transport {
  return {
    start: (_onMessage: (m: RaftMessage) => void) => Promise.resolve(),
    send: () => undefined,
    close: () => Promise.resolve(),
  };
}

describe('helpers on a one-peer cluster', () => {
  let peer: Peer<KVCommand, KVQuery, KVReply> | undefined;
  afterEach(async () => {
    if (peer) await stopPeer(peer);
    peer = undefined;
  });

  it('set, get, cas and del go through the real runtime, by name and by Peer', async () => {
    peer = await startPeer(KVStore, { name: 'kv-single-1', log: memoryLog(), transport: noTransport() });
    await peer.setConfiguration(['kv-single-1']);
    expect(await set('kv-single-1', 'k', { list: [1, 2] })).toEqual({ ok: true, value: { list: [1, 2] } });
    expect(await get(peer, 'k')).toEqual({ ok: true, value: { list: [1, 2] } });
    expect(await cas(peer, 'k', { list: [2, 1] }, 0)).toEqual({
      ok: false,
      error: 'cas_mismatch',
      value: { list: [1, 2] },
    });
    expect(await cas(peer, 'k', { list: [1, 2] }, new Uint8Array([1]))).toEqual({
      ok: true,
      value: new Uint8Array([1]),
    });
    expect(await del('kv-single-1', 'k')).toEqual({ ok: true });
    expect(await get('kv-single-1', 'k')).toEqual({ ok: false, error: 'key_not_found' });
  });
});
