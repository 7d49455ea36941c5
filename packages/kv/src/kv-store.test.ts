import { msgpackCodec, RaftError } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { KVStore } from './kv-store.js';
import type { KVReply, KVState } from './types.js';

/** Applies commands in order, as a peer does, and returns the replies. */
function applyAll(
  commands: unknown[],
  state: KVState = KVStore.init('n1'),
): { replies: KVReply[]; state: KVState } {
  const replies: KVReply[] = [];
  for (const command of commands) {
    const [reply, next] = KVStore.handleWrite(command as never, state);
    replies.push(reply);
    state = next;
  }
  return { replies, state };
}

function write(state: KVState, command: unknown): KVReply {
  const [reply, next] = KVStore.handleWrite(command as never, state);
  expect(next).toBe(state);
  return reply;
}

function get(state: KVState, key: unknown): KVReply {
  return KVStore.handleRead({ op: 'get', key } as never, state);
}

describe('KVStore', () => {
  it('starts empty', () => {
    const state = KVStore.init('n1');
    expect(state.size).toBe(0);
    expect(get(state, 'a')).toEqual({ ok: false, error: 'key_not_found' });
  });

  describe('set', () => {
    it('stores the value and replies with it', () => {
      const state = KVStore.init('n1');
      expect(write(state, { op: 'set', key: 'a', value: { x: [1, 'two'] } })).toEqual({
        ok: true,
        value: { x: [1, 'two'] },
      });
      expect(get(state, 'a')).toEqual({ ok: true, value: { x: [1, 'two'] } });
    });

    it('overwrites a previous value', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: 1 });
      write(state, { op: 'set', key: 'a', value: null });
      expect(get(state, 'a')).toEqual({ ok: true, value: null });
    });

    it('accepts any JSON value and byte arrays, and the empty key', () => {
      const state = KVStore.init('n1');
      for (const value of [null, false, 0, -1.5, '', 'é', [], {}, new Uint8Array([0, 255])]) {
        expect(write(state, { op: 'set', key: '', value })).toEqual({ ok: true, value });
        expect(get(state, '')).toEqual({ ok: true, value });
      }
    });

    it('keeps its own frozen copy: changing the command or a reply afterwards changes nothing', () => {
      const state = KVStore.init('n1');
      const value = { list: [1, 2], bytes: new Uint8Array([1]) };
      const reply = write(state, { op: 'set', key: 'a', value });
      value.list.push(3);
      value.bytes[0] = 9;
      expect(get(state, 'a')).toEqual({ ok: true, value: { list: [1, 2], bytes: new Uint8Array([1]) } });
      const stored = (reply as unknown as { value: { list: number[] } }).value;
      expect(() => stored.list.push(4)).toThrow(TypeError);
    });
  });

  describe('delete', () => {
    it('removes a present key and replies { ok: true } without a value', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: 1 });
      const reply = write(state, { op: 'delete', key: 'a' });
      expect(reply).toStrictEqual({ ok: true });
      expect(get(state, 'a')).toEqual({ ok: false, error: 'key_not_found' });
    });

    it('replies key_not_found for an absent key', () => {
      const state = KVStore.init('n1');
      expect(write(state, { op: 'delete', key: 'a' })).toEqual({ ok: false, error: 'key_not_found' });
    });

    it('deletes a key whose value is null', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: null });
      expect(write(state, { op: 'delete', key: 'a' })).toEqual({ ok: true });
      expect(state.has('a')).toBe(false);
    });
  });

  describe('cas', () => {
    it('sets the new value when the current one equals expected', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: 1 });
      expect(write(state, { op: 'cas', key: 'a', expected: 1, value: 2 })).toEqual({ ok: true, value: 2 });
      expect(get(state, 'a')).toEqual({ ok: true, value: 2 });
    });

    it('compares by deep structural equality, ignoring the key order of objects', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: { x: 1, y: [1, { z: null }], b: new Uint8Array([1]) } });
      const reply = write(state, {
        op: 'cas',
        key: 'a',
        expected: { b: new Uint8Array([1]), y: [1, { z: null }], x: 1 },
        value: 'next',
      });
      expect(reply).toEqual({ ok: true, value: 'next' });
    });

    it('replies cas_mismatch with the current value, and changes nothing', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: [1, 2] });
      expect(write(state, { op: 'cas', key: 'a', expected: [2, 1], value: 3 })).toEqual({
        ok: false,
        error: 'cas_mismatch',
        value: [1, 2],
      });
      expect(get(state, 'a')).toEqual({ ok: true, value: [1, 2] });
    });

    it('does not treat 1 and "1", or null and an absent key, as equal', () => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: 1 });
      expect(write(state, { op: 'cas', key: 'a', expected: '1', value: 2 })).toMatchObject({
        error: 'cas_mismatch',
        value: 1,
      });
      expect(write(state, { op: 'cas', key: 'b', expected: null, value: 2 })).toEqual({
        ok: false,
        error: 'key_not_found',
      });
      expect(state.has('b')).toBe(false);
    });

    it('replies key_not_found for an absent key', () => {
      const state = KVStore.init('n1');
      expect(write(state, { op: 'cas', key: 'a', expected: 1, value: 2 })).toEqual({
        ok: false,
        error: 'key_not_found',
      });
    });
  });

  describe('malformed commands', () => {
    it.each<[string, unknown]>([
      ['undefined', undefined],
      ['null', null],
      ['a string', 'set a 1'],
      ['an array', ['set', 'a', 1]],
      ['no op', { key: 'a', value: 1 }],
      ['an unknown op', { op: 'increment', key: 'a' }],
      ['a get through the log', { op: 'get', key: 'a' }],
      ['an op of the wrong type', { op: 1, key: 'a' }],
      ['a numeric key', { op: 'set', key: 1, value: 1 }],
      ['a missing key', { op: 'delete' }],
      ['an object key', { op: 'set', key: { k: 1 }, value: 1 }],
      ['a set without value', { op: 'set', key: 'a' }],
      ['a set of undefined', { op: 'set', key: 'a', value: undefined }],
      ['a set of NaN', { op: 'set', key: 'a', value: NaN }],
      ['a set of a Date', { op: 'set', key: 'a', value: new Date(0) }],
      ['a set of a bigint', { op: 'set', key: 'a', value: 1n }],
      ['a cas without expected', { op: 'cas', key: 'a', value: 1 }],
      ['a cas without value', { op: 'cas', key: 'a', expected: 1 }],
      ['a cas expecting a function', { op: 'cas', key: 'a', expected: () => 1, value: 1 }],
    ])('%s gets bad_command, never throws, and changes nothing', (_name, command) => {
      const state = KVStore.init('n1');
      write(state, { op: 'set', key: 'a', value: 1 });
      const reply = write(state, command);
      expect(reply).toEqual({ ok: false, error: 'bad_command', message: expect.any(String) as unknown });
      expect([...state]).toEqual([['a', 1]]);
    });

    it('is deterministic: the same malformed command gets the same reply', () => {
      const replies = [0, 1].map(() =>
        write(KVStore.init('n1'), { op: 'set', key: 'a', value: [1, { x: NaN }] }),
      );
      expect(replies[0]).toEqual(replies[1]);
    });

    it('validates a cas before looking the key up', () => {
      const state = KVStore.init('n1');
      expect(write(state, { op: 'cas', key: 'missing', expected: undefined, value: 1 })).toMatchObject({
        error: 'bad_command',
      });
    });

    it.each<[string, unknown]>([
      ['undefined', undefined],
      ['a set', { op: 'set', key: 'a', value: 1 }],
      ['a numeric key', { op: 'get', key: 1 }],
      ['no key', { op: 'get' }],
    ])('a query of %s gets bad_command', (_name, query) => {
      const state = KVStore.init('n1');
      expect(KVStore.handleRead(query as never, state)).toEqual({
        ok: false,
        error: 'bad_command',
        message: expect.any(String) as unknown,
      });
      expect(state.size).toBe(0);
    });
  });

  it('reads never change the state', () => {
    const state = KVStore.init('n1');
    write(state, { op: 'set', key: 'a', value: { x: 1 } });
    const before = [...state];
    get(state, 'a');
    get(state, 'missing');
    expect([...state]).toEqual(before);
  });

  it('is deterministic: the same commands give the same replies and state on every peer', () => {
    const commands: unknown[] = [
      { op: 'set', key: 'a', value: 1 },
      { op: 'cas', key: 'a', expected: 1, value: { v: 2 } },
      { op: 'cas', key: 'a', expected: 1, value: 3 },
      { op: 'delete', key: 'b' },
      { op: 'set', key: 'b', value: [1] },
      { op: 'bogus' },
      { op: 'delete', key: 'a' },
      { op: 'set', key: 'a', value: 'again' },
    ];
    const codec = msgpackCodec();
    // Each peer applies the command decoded from the log, as the runtime does.
    const peers = ['n1', 'n2', 'n3'].map((name) =>
      applyAll(
        commands.map((c) => codec.decode(codec.encode(c))),
        KVStore.init(name),
      ),
    );
    for (const peer of peers) {
      expect(peer.replies).toEqual(peers[0]!.replies);
      expect([...peer.state]).toEqual([...peers[0]!.state]);
    }
    expect([...peers[0]!.state]).toEqual([
      ['b', [1]],
      ['a', 'again'],
    ]);
  });

  describe('snapshot and restore', () => {
    it('round-trips every kind of value and keeps key order', async () => {
      const { state } = applyAll([
        { op: 'set', key: 'z', value: { nested: [1, { x: null }], flag: true } },
        { op: 'set', key: 'a', value: new Uint8Array([1, 2, 3]) },
        { op: 'set', key: 'm', value: -0.5 },
        { op: 'set', key: '', value: '' },
        { op: 'set', key: 'gone', value: 1 },
        { op: 'delete', key: 'gone' },
      ]);
      const bytes = await KVStore.snapshot(state);
      expect(bytes).toBeInstanceOf(Uint8Array);
      const restored = await KVStore.restore(bytes, 'n2');
      expect([...restored.keys()]).toEqual(['z', 'a', 'm', '']);
      expect([...restored]).toEqual([...state]);
      // Bytes come back as a Uint8Array, not a Buffer.
      expect((restored.get('a') as Uint8Array).constructor).toBe(Uint8Array);
    });

    it('restores an empty store', async () => {
      const restored = await KVStore.restore(await KVStore.snapshot(KVStore.init('n1')), 'n1');
      expect(restored.size).toBe(0);
    });

    it('gives the same bytes for the same commands', async () => {
      const commands = [
        { op: 'set', key: 'b', value: 1 },
        { op: 'set', key: 'a', value: { y: 1, x: 2 } },
      ];
      const one = await KVStore.snapshot(applyAll(commands).state);
      const two = await KVStore.snapshot(applyAll(commands).state);
      expect(Buffer.from(one).equals(Buffer.from(two))).toBe(true);
    });

    it('a restored store goes on like the original', async () => {
      const { state } = applyAll([{ op: 'set', key: 'a', value: { n: 1 } }]);
      const restored = await KVStore.restore(await KVStore.snapshot(state), 'n2');
      const original = applyAll([{ op: 'cas', key: 'a', expected: { n: 1 }, value: 2 }], state);
      const copy = applyAll([{ op: 'cas', key: 'a', expected: { n: 1 }, value: 2 }], restored);
      expect(copy.replies).toEqual(original.replies);
      expect([...copy.state]).toEqual([...original.state]);
    });

    it('does not share memory with the snapshot bytes', async () => {
      const { state } = applyAll([{ op: 'set', key: 'a', value: new Uint8Array([5]) }]);
      const bytes = await KVStore.snapshot(state);
      const restored = await KVStore.restore(bytes, 'n2');
      bytes.fill(0);
      expect(restored.get('a')).toEqual(new Uint8Array([5]));
    });

    it('restores the first layout (one MessagePack map), written by earlier versions', async () => {
      const bytes = msgpackCodec().encode({ version: 1, entries: ['b', 1, 'a', { x: [2] }] });
      const restored = await KVStore.restore(bytes, 'n1');
      expect([...restored]).toEqual([
        ['b', 1],
        ['a', { x: [2] }],
      ]);
    });

    it('a large map is encoded and restored a frame at a time, giving the event loop back in between', async () => {
      // 10,000 keys: five frames of at most 2048. A timer set before the call fires
      // before the call settles only if the work gave the event loop back.
      const state: KVState = new Map();
      for (let i = 0; i < 10_000; i++) state.set(`k${i}`, { i });
      let fired = false;
      setTimeout(() => (fired = true), 0);
      const bytes = await KVStore.snapshot(state);
      expect(fired).toBe(true);
      fired = false;
      setTimeout(() => (fired = true), 0);
      const restored = await KVStore.restore(bytes, 'n2');
      expect(fired).toBe(true);
      expect(restored.size).toBe(10_000);
      expect([...restored.keys()].slice(0, 3)).toEqual(['k0', 'k1', 'k2']);
      expect(restored.get('k9999')).toEqual({ i: 9999 });
      // The restored map snapshots to the same bytes: the layout does not depend on the timing.
      expect(Buffer.from(await KVStore.snapshot(restored)).equals(Buffer.from(bytes))).toBe(true);
    });

    it('a small map needs no turn of the event loop', async () => {
      const state: KVState = new Map([['a', 1]]);
      let fired = false;
      setImmediate(() => (fired = true));
      await KVStore.restore(await KVStore.snapshot(state), 'n2');
      expect(fired).toBe(false);
    });

    const framed = (count: number, ...frames: Uint8Array[]): Uint8Array => {
      const parts: Uint8Array[] = [new Uint8Array([0x4b, 0x56, 0x53, 0x32, 0, 0, 0, count])];
      for (const f of frames) {
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, f.length);
        parts.push(len, f);
      }
      return Buffer.concat(parts);
    };
    const packed = (v: unknown): Uint8Array => msgpackCodec().encode(v);

    it.each<[string, Uint8Array]>([
      ['empty bytes', new Uint8Array()],
      ['garbage', new Uint8Array([0xc1, 0xc1, 0xc1])],
      ['a truncated snapshot', new Uint8Array([0x82, 0xa7])],
      ['another structure', packed({ hello: 'world' })],
      ['an unknown version', packed({ version: 2, entries: [] })],
      ['an odd number of entries', packed({ version: 1, entries: ['a'] })],
      ['a non-string key', packed({ version: 1, entries: [1, 1] })],
      ['a duplicate key', packed({ version: 1, entries: ['a', 1, 'a', 2] })],
      ['an invalid value', packed({ version: 1, entries: ['a', new Date(0)] })],
      ['a scalar', packed(42)],
      ['a truncated header', new Uint8Array([0x4b, 0x56, 0x53, 0x32, 0])],
      ['a truncated frame', framed(1, packed(['a', 1])).subarray(0, 14)],
      ['fewer entries than announced', framed(2, packed(['a', 1]))],
      ['more entries than announced', framed(1, packed(['a', 1, 'b', 2]))],
      ['a duplicate key across frames', framed(2, packed(['a', 1]), packed(['a', 2]))],
      ['a frame that is not an array', framed(1, packed({ a: 1 }))],
    ])('restore of %s rejects with RAFT_INVALID_ARGUMENT', async (_name, bytes) => {
      const error: unknown = await KVStore.restore(bytes, 'n1').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(RaftError.isInstance(error)).toBe(true);
      expect((error as RaftError).code).toBe('RAFT_INVALID_ARGUMENT');
    });

    it('keeps the decoder error as the cause', async () => {
      const error: unknown = await KVStore.restore(new Uint8Array([0x82, 0xa7]), 'n1').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((error as RaftError).code).toBe('RAFT_INVALID_ARGUMENT');
      expect((error as Error).cause).toBeInstanceOf(Error);
    });
  });
});
