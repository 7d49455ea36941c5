import { describe, expect, it } from 'vitest';
import { checkOperations } from './checker.js';
import { kvModel, type KVModelInput, type KVModelOutput } from './kv-model.js';
import { UNKNOWN, type Operation, type Unknown } from './types.js';

type KVOp = Operation<KVModelInput, KVModelOutput>;

const OK: KVModelOutput = { ok: true };
const NOT_FOUND: KVModelOutput = { ok: false, error: 'key_not_found' };

/** `[call, return]`; a missing return means the client never got an answer. */
type Span = [call: number, ret?: number];

function op(clientId: number, input: KVModelInput, [call, ret]: Span, output: KVModelOutput | Unknown): KVOp {
  return { clientId, input, call, output: ret === undefined ? UNKNOWN : output, return: ret };
}
const set = (
  c: number,
  key: string,
  value: unknown,
  span: Span,
  output: KVModelOutput | Unknown = { ok: true, value },
): KVOp => op(c, { op: 'set', key, value }, span, output);
const get = (c: number, key: string, span: Span, output: KVModelOutput | Unknown): KVOp =>
  op(c, { op: 'get', key }, span, output);
const del = (c: number, key: string, span: Span, output: KVModelOutput | Unknown = OK): KVOp =>
  op(c, { op: 'delete', key }, span, output);
const cas = (
  c: number,
  key: string,
  expected: unknown,
  value: unknown,
  span: Span,
  output: KVModelOutput | Unknown,
): KVOp => op(c, { op: 'cas', key, expected, value }, span, output);
const value = (v: unknown): KVModelOutput => ({ ok: true, value: v });
const mismatch = (current: unknown): KVModelOutput => ({ ok: false, error: 'cas_mismatch', value: current });

function ok(history: KVOp[]): boolean | 'unknown' {
  return checkOperations(kvModel, history).ok;
}

describe('kvModel', () => {
  describe('single operations', () => {
    it('starts with every key absent', () => {
      expect(ok([get(0, 'x', [0, 1], NOT_FOUND)])).toBe(true);
      expect(ok([get(0, 'x', [0, 1], value(null))])).toBe(false);
      expect(ok([del(0, 'x', [0, 1], NOT_FOUND)])).toBe(true);
      expect(ok([del(0, 'x', [0, 1], OK)])).toBe(false);
      expect(ok([cas(0, 'x', null, 1, [0, 1], NOT_FOUND)])).toBe(true);
      expect(ok([cas(0, 'x', null, 1, [0, 1], value(1))])).toBe(false);
    });

    it('reads what was written, compared structurally', () => {
      const written = { b: [1, { c: null }], a: new Uint8Array([1, 2]) };
      expect(
        ok([
          set(0, 'x', written, [0, 1]),
          get(0, 'x', [2, 3], value({ a: new Uint8Array([1, 2]), b: [1, { c: null }] })),
        ]),
      ).toBe(true);
      expect(
        ok([
          set(0, 'x', written, [0, 1]),
          get(0, 'x', [2, 3], value({ a: new Uint8Array([1, 3]), b: [1, { c: null }] })),
        ]),
      ).toBe(false);
      expect(ok([set(0, 'x', [1, 2], [0, 1]), get(0, 'x', [2, 3], value([2, 1]))])).toBe(false);
      expect(ok([set(0, 'x', 1, [0, 1]), get(0, 'x', [2, 3], value('1'))])).toBe(false);
      expect(ok([set(0, 'x', 0, [0, 1]), get(0, 'x', [2, 3], value(-0))])).toBe(true);
    });

    it('accepts @raft/kv replies with or without the value of a set or cas', () => {
      expect(
        ok([set(0, 'x', 1, [0, 1], OK), cas(0, 'x', 1, 2, [2, 3], OK), get(0, 'x', [4, 5], value(2))]),
      ).toBe(true);
      expect(ok([set(0, 'x', 1, [0, 1], value(2))])).toBe(false);
      expect(ok([set(0, 'x', 1, [0, 1]), cas(0, 'x', 1, 2, [2, 3], value(3))])).toBe(false);
    });

    it('never accepts an error it does not know, such as bad_command', () => {
      expect(ok([set(0, 'x', 1, [0, 1], { ok: false, error: 'bad_command' })])).toBe(false);
      expect(ok([get(0, 'x', [0, 1], { ok: false, error: 'bad_command' })])).toBe(false);
    });
  });

  describe('anomalies it catches', () => {
    it('a stale read: the old value after the write completed', () => {
      const history = [set(0, 'x', 1, [0, 1]), set(1, 'x', 2, [2, 3]), get(2, 'x', [4, 5], value(1))];
      expect(ok(history)).toBe(false);
    });

    it('a stale read across clients: a read of the old value after another read saw the new one', () => {
      const history = [
        set(0, 'x', 1, [0, 1]),
        set(1, 'x', 2, [2, 10]),
        get(2, 'x', [3, 4], value(2)),
        get(3, 'x', [5, 6], value(1)),
      ];
      expect(ok(history)).toBe(false);
    });

    it('a lost write: an acknowledged set that no later read sees', () => {
      const history = [set(0, 'x', 1, [0, 1]), get(1, 'x', [2, 3], NOT_FOUND)];
      expect(ok(history)).toBe(false);
    });

    it('a lost delete: the key comes back', () => {
      const history = [set(0, 'x', 1, [0, 1]), del(0, 'x', [2, 3]), get(1, 'x', [4, 5], value(1))];
      expect(ok(history)).toBe(false);
    });

    it('a double delete: both deletes succeed though nobody set the key in between', () => {
      const history = [set(0, 'x', 1, [0, 1]), del(1, 'x', [2, 5]), del(2, 'x', [2, 5])];
      expect(ok(history)).toBe(false);
      expect(ok([set(0, 'x', 1, [0, 1]), del(1, 'x', [2, 5]), del(2, 'x', [2, 5], NOT_FOUND)])).toBe(true);
    });

    it('a cas that succeeds against a value that was not there', () => {
      const history = [set(0, 'x', 1, [0, 1]), cas(1, 'x', 2, 3, [2, 3], value(3))];
      expect(ok(history)).toBe(false);
    });

    it('two concurrent cas from the same value that both succeed', () => {
      const history = [
        set(0, 'x', 0, [0, 1]),
        cas(1, 'x', 0, 1, [2, 5], value(1)),
        cas(2, 'x', 0, 2, [2, 5], value(2)),
      ];
      expect(ok(history)).toBe(false);
    });

    it('a cas mismatch that reports a value the key never had then', () => {
      expect(ok([set(0, 'x', 1, [0, 1]), cas(1, 'x', 2, 3, [2, 3], mismatch(5))])).toBe(false);
      expect(ok([set(0, 'x', 1, [0, 1]), cas(1, 'x', 2, 3, [2, 3], mismatch(1))])).toBe(true);
    });

    it('a cas mismatch although the value matched and nothing concurrent changed it', () => {
      expect(
        ok([
          set(0, 'x', { a: 1, b: 2 }, [0, 1]),
          cas(1, 'x', { b: 2, a: 1 }, 3, [2, 3], mismatch({ a: 1, b: 2 })),
        ]),
      ).toBe(false);
    });

    it('a cas that reports key_not_found for a present key', () => {
      expect(ok([set(0, 'x', 1, [0, 1]), cas(1, 'x', 1, 2, [2, 3], NOT_FOUND)])).toBe(false);
    });
  });

  describe('concurrency it allows', () => {
    it('a read concurrent with a write may see either value', () => {
      const before = [set(0, 'x', 1, [0, 1]), set(1, 'x', 2, [2, 6])];
      expect(ok([...before, get(2, 'x', [3, 4], value(1))])).toBe(true);
      expect(ok([...before, get(2, 'x', [3, 4], value(2))])).toBe(true);
      expect(ok([...before, get(2, 'x', [3, 4], value(3))])).toBe(false);
    });

    it('concurrent writes may land in either order, as long as reads agree on it', () => {
      const writes = [set(0, 'x', 'a', [0, 10]), set(1, 'x', 'b', [0, 10])];
      expect(ok([...writes, get(2, 'x', [11, 12], value('a'))])).toBe(true);
      expect(ok([...writes, get(2, 'x', [11, 12], value('b'))])).toBe(true);
      expect(ok([...writes, get(2, 'x', [11, 12], value('a')), get(3, 'x', [13, 14], value('b'))])).toBe(
        false,
      );
    });

    it('two concurrent cas from the same value: one wins, the other sees its value', () => {
      const history = [
        set(0, 'x', 0, [0, 1]),
        cas(1, 'x', 0, 1, [2, 5], value(1)),
        cas(2, 'x', 0, 2, [2, 5], mismatch(1)),
      ];
      expect(ok(history)).toBe(true);
    });

    it('a chain of concurrent cas increments', () => {
      const history = [
        set(0, 'n', 0, [0, 1]),
        cas(1, 'n', 0, 1, [2, 10], value(1)),
        cas(2, 'n', 1, 2, [3, 9], value(2)),
        cas(3, 'n', 2, 3, [4, 8], value(3)),
        cas(4, 'n', 0, 9, [5, 7], mismatch(2)),
        get(5, 'n', [11, 12], value(3)),
      ];
      expect(ok(history)).toBe(true);
    });
  });

  describe('unknown outcomes', () => {
    it('a timed-out set that took effect', () => {
      const history = [set(0, 'x', 1, [0, 1]), set(1, 'x', 2, [2]), get(2, 'x', [10, 11], value(2))];
      expect(ok(history)).toBe(true);
    });

    it('a timed-out set that did not take effect', () => {
      const history = [set(0, 'x', 1, [0, 1]), set(1, 'x', 2, [2]), get(2, 'x', [10, 11], value(1))];
      expect(ok(history)).toBe(true);
    });

    it('a timed-out set that took effect late: after a read that missed it', () => {
      const history = [
        set(0, 'x', 1, [0, 1]),
        set(1, 'x', 2, [2]),
        get(2, 'x', [10, 11], value(1)),
        get(2, 'x', [20, 21], value(2)),
      ];
      expect(ok(history)).toBe(true);
    });

    it('a timed-out set cannot take effect twice', () => {
      const history = [
        set(0, 'x', 1, [0, 1]),
        set(1, 'x', 2, [2]),
        get(2, 'x', [10, 11], value(2)),
        set(0, 'x', 3, [12, 13]),
        get(2, 'x', [20, 21], value(2)),
      ];
      expect(ok(history)).toBe(false);
    });

    it('a timed-out set cannot take effect before it was called', () => {
      const history = [get(2, 'x', [0, 1], value(2)), set(1, 'x', 2, [2])];
      expect(ok(history)).toBe(false);
    });

    it('a timed-out delete and cas, each either way', () => {
      const base = [set(0, 'x', 1, [0, 1]), del(1, 'x', [2], UNKNOWN)];
      expect(ok([...base, get(2, 'x', [5, 6], NOT_FOUND)])).toBe(true);
      expect(ok([...base, get(2, 'x', [5, 6], value(1))])).toBe(true);
      const withCas = [set(0, 'y', 1, [0, 1]), cas(1, 'y', 1, 5, [2], UNKNOWN)];
      expect(ok([...withCas, get(2, 'y', [5, 6], value(5))])).toBe(true);
      expect(ok([...withCas, get(2, 'y', [5, 6], value(1))])).toBe(true);
      // A cas whose expected value never matched cannot have written.
      const failing = [
        set(0, 'z', 1, [0, 1]),
        cas(1, 'z', 7, 5, [2], UNKNOWN),
        get(2, 'z', [5, 6], value(5)),
      ];
      expect(ok(failing)).toBe(false);
    });

    it('an unanswered get is dropped, whatever its input', () => {
      const history = [set(0, 'x', 1, [0, 1]), get(1, 'x', [2], UNKNOWN)];
      const result = checkOperations(kvModel, [...history, get(2, 'x', [3, 4], NOT_FOUND)]);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.operations).not.toContain(history[1]);
    });
  });

  describe('keys', () => {
    it('are independent: each is checked on its own', () => {
      const history = [
        set(0, 'x', 1, [0, 10]),
        set(1, 'y', 1, [0, 10]),
        get(2, 'x', [11, 12], value(1)),
        get(2, 'y', [11, 12], NOT_FOUND),
      ];
      const result = checkOperations(kvModel, history);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.partition).toBe(1);
      expect(result.counterexample.operations).toEqual([history[1], history[3]]);
    });

    it('do not let a value leak from one key to another', () => {
      expect(ok([set(0, 'x', 1, [0, 1]), get(1, 'y', [2, 3], value(1))])).toBe(false);
    });
  });

  it('describes a counterexample in the words of the store', () => {
    const history = [
      set(0, 'x', { v: 1 }, [0, 1]),
      cas(1, 'x', { v: 1 }, { v: 2 }, [2, 3], value({ v: 2 })),
      get(2, 'x', [4, 5], value({ v: 1 })),
      del(3, 'x', [6]),
    ];
    const result = checkOperations(kvModel, history);
    if (result.ok !== false) throw new Error('expected a violation');
    const text = result.counterexample.description;
    expect(text).toContain('client 0: set("x", {"v": 1}) -> ok   [call 0, return 1]');
    expect(text).toContain('cas("x", {"v": 1}, {"v": 2}) -> ok');
    expect(text).toContain('get("x") -> {"v": 1}');
    expect(text).toContain('State after it: {"v": 2}');
    expect(text).toContain('impossible in this state');
    expect(result.counterexample.stateAfterPrefix).toEqual({ present: true, value: { v: 2 } });
  });
});
