import { RaftError } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { checkOperations } from './checker.js';
import { UNKNOWN, type Model, type Operation, type Unknown } from './types.js';

/** A register holding a number, 0 at first: `put` writes, `get` reads. */
type RegisterInput = { op: 'put'; value: number } | { op: 'get' };
type RegisterOp = Operation<RegisterInput, number | null>;

const registerModel: Model<number, RegisterInput, number | null> = {
  init: () => 0,
  step: (state, input, output) =>
    input.op === 'put' ? [true, input.value] : [output === UNKNOWN || output === state, state],
  readOnly: (input) => input.op === 'get',
  describeOperation: (input, output) =>
    input.op === 'put'
      ? `put(${input.value})`
      : `get() -> ${output === UNKNOWN ? 'unknown' : String(output)}`,
};

function put(clientId: number, value: number, call: number, ret?: number, unknown = false): RegisterOp {
  return {
    clientId,
    input: { op: 'put', value },
    call,
    output: unknown || ret === undefined ? UNKNOWN : null,
    return: ret,
  };
}

function get(clientId: number, value: number | Unknown, call: number, ret?: number): RegisterOp {
  return { clientId, input: { op: 'get' }, call, output: value, return: ret };
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    return RaftError.isInstance(err) ? err.code : `not a RaftError: ${String(err)}`;
  }
}

describe('checkOperations', () => {
  describe('the register examples of Porcupine (MIT 6.824 quiz)', () => {
    it('accepts a read of the new value overlapping a read of the old one, both inside the write', () => {
      const history = [put(0, 100, 0, 100), get(1, 100, 25, 75), get(2, 0, 30, 60)];
      expect(checkOperations(registerModel, history)).toEqual({ ok: true });
    });

    it('rejects a read of the old value after a read of the new one returned', () => {
      const history = [put(0, 200, 0, 100), get(1, 200, 10, 30), get(2, 0, 40, 90)];
      const result = checkOperations(registerModel, history);
      expect(result.ok).toBe(false);
    });

    it('accepts operations of zero duration at the same instant', () => {
      const history = [put(0, 100, 0, 100), get(1, 100, 25, 75), get(2, 0, 30, 30), get(3, 0, 30, 30)];
      expect(checkOperations(registerModel, history)).toEqual({ ok: true });
    });

    it('rejects a zero-duration read of the old value after zero-duration reads of the new one', () => {
      const history = [put(0, 200, 0, 100), get(1, 200, 10, 10), get(2, 200, 10, 10), get(3, 0, 40, 90)];
      expect(checkOperations(registerModel, history).ok).toBe(false);
    });
  });

  describe('real-time order', () => {
    it('accepts a sequential history that matches the model', () => {
      const history = [put(0, 1, 0, 1), get(0, 1, 2, 3), put(1, 2, 4, 5), get(2, 2, 6, 7)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
    });

    it('rejects a sequential history whose read is stale', () => {
      const history = [put(0, 1, 0, 1), put(1, 2, 2, 3), get(2, 1, 4, 5)];
      expect(checkOperations(registerModel, history).ok).toBe(false);
    });

    it('accepts the same read when it overlaps the second write', () => {
      const history = [put(0, 1, 0, 1), put(1, 2, 2, 6), get(2, 1, 4, 5)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
    });

    it('treats operations that touch (a return at the same time as a call) as concurrent', () => {
      const history = [put(0, 1, 0, 10), get(1, 0, 10, 20)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
      const apart = [put(0, 1, 0, 10), get(1, 0, 10.5, 20)];
      expect(checkOperations(registerModel, apart).ok).toBe(false);
    });

    it('does not depend on the order of the history array', () => {
      const good = [put(0, 1, 0, 1), put(1, 2, 2, 3), get(2, 2, 4, 5), get(3, 1, 2.5, 6)];
      const bad = [put(0, 1, 0, 1), put(1, 2, 2, 3), get(2, 1, 4, 5), get(3, 2, 2.5, 6)];
      expect(checkOperations(registerModel, good).ok).toBe(true);
      expect(checkOperations(registerModel, [...good].reverse()).ok).toBe(true);
      expect(checkOperations(registerModel, bad).ok).toBe(false);
      expect(checkOperations(registerModel, [...bad].reverse()).ok).toBe(false);
    });
  });

  describe('unknown outcomes', () => {
    it('lets a write with an unknown outcome take effect long after the client gave up', () => {
      // The client saw a timeout at 5; the write was applied at ~20, between the reads.
      const history = [put(0, 1, 0, 5, true), get(1, 0, 10, 11), get(1, 1, 30, 31)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
    });

    it('lets a write with an unknown outcome never take effect', () => {
      const history = [put(0, 1, 0, undefined), get(1, 0, 10, 11), get(1, 0, 30, 31)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
    });

    it('does not let it take effect before its call', () => {
      const history = [get(1, 7, 0, 1), put(0, 7, 2, undefined)];
      expect(checkOperations(registerModel, history).ok).toBe(false);
    });

    it('does not let it take effect twice', () => {
      const history = [put(0, 1, 0, undefined), get(1, 1, 10, 11), put(2, 2, 12, 13), get(1, 1, 14, 15)];
      expect(checkOperations(registerModel, history).ok).toBe(false);
    });

    it('accepts Infinity as "no return"', () => {
      const history = [put(0, 1, 0, Infinity, true), get(1, 1, 10, 11)];
      expect(checkOperations(registerModel, history).ok).toBe(true);
    });

    it('drops pending operations called after the last answer: they can always go last', () => {
      const history = [put(0, 1, 0, 1), get(1, 2, 2, 3), put(2, 2, 4, undefined)];
      const result = checkOperations(registerModel, history);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.operations).toEqual([history[0], history[1]]);
      // One called before the last answer stays, and may explain it.
      const explained = [put(0, 1, 0, 1), put(2, 2, 1.5, undefined), get(1, 2, 2, 3)];
      expect(checkOperations(registerModel, explained).ok).toBe(true);
    });

    it('drops pending operations of read-only inputs', () => {
      const history = [put(0, 1, 0, 1), get(1, UNKNOWN, 2, undefined), get(2, 2, 3, 4)];
      const result = checkOperations(registerModel, history);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.operations).toEqual([history[0], history[2]]);
    });
  });

  describe('counterexamples', () => {
    it('give the longest linearizable prefix, the state after it and the operations that could come next', () => {
      const history = [put(0, 1, 0, 1), get(1, 1, 2, 3), put(2, 2, 4, 5), get(3, 3, 6, 7), get(4, 2, 6.5, 8)];
      const result = checkOperations(registerModel, history);
      if (result.ok !== false) throw new Error('expected a violation');
      const { counterexample } = result;
      expect(counterexample.partition).toBe(0);
      expect(counterexample.operations).toEqual(history);
      expect(counterexample.longestPrefix).toEqual([history[0], history[1], history[2], history[4]]);
      expect(counterexample.stateAfterPrefix).toBe(2);
      expect(counterexample.candidates).toEqual([{ operation: history[3], accepted: false }]);
      expect(counterexample.description).toContain('get() -> 3');
      expect(counterexample.description).toContain('State after it: 2');
      expect(counterexample.description.split('\n').length).toBeGreaterThan(5);
    });

    it('report an empty prefix when nothing can go first', () => {
      const history = [get(0, 5, 0, 1), put(1, 5, 2, 3)];
      const result = checkOperations(registerModel, history);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.longestPrefix).toEqual([]);
      expect(result.counterexample.stateAfterPrefix).toBe(0);
      expect(result.counterexample.candidates).toEqual([{ operation: history[0], accepted: false }]);
      expect(result.counterexample.description).toContain('(none)');
    });

    it('name the failing part and describe operations with JSON by default', () => {
      const model: Model<number, RegisterInput & { key: string }, number | null> = {
        init: () => 0,
        step: (state, input, output) =>
          input.op === 'put' ? [true, input.value] : [output === UNKNOWN || output === state, state],
        partition: (history) => ['a', 'b', 'c'].map((key) => history.filter((op) => op.input.key === key)),
      };
      const history: Operation<RegisterInput & { key: string }, number | null>[] = [
        { input: { op: 'put', value: 1, key: 'a' }, call: 0, output: null, return: 1 },
        { input: { op: 'put', value: 1, key: 'b' }, call: 0, output: null, return: 1 },
        { input: { op: 'get', key: 'b' }, call: 2, output: 0, return: 3 },
        { input: { op: 'get', key: 'c' }, call: 2, output: 0, return: 3 },
      ];
      const result = checkOperations(model, history);
      if (result.ok !== false) throw new Error('expected a violation');
      expect(result.counterexample.partition).toBe(1);
      expect(result.counterexample.operations).toEqual(history.slice(1, 3));
      expect(result.counterexample.description).toContain('{"op": "get", "key": "b"} -> 0');
      expect(result.counterexample.description).toContain('part 1');
    });

    it('are deterministic', () => {
      const history = [put(0, 1, 0, 10), put(1, 2, 0, 10), put(2, 3, 0, 10), get(3, 4, 11, 12)];
      const one = checkOperations(registerModel, history);
      const two = checkOperations(registerModel, history);
      expect(one).toEqual(two);
      expect(one.ok).toBe(false);
    });
  });

  describe('states that are objects', () => {
    // Porcupine's set model: `add` inserts, `read` returns the sorted members.
    type SetInput = { op: 'add'; value: number } | { op: 'read' };
    const setModel = (options: {
      hash: boolean;
      equal: boolean;
    }): Model<readonly number[], SetInput, readonly number[] | null> => ({
      init: () => [],
      step: (state, input, output) => {
        if (input.op === 'add')
          return [true, state.includes(input.value) ? state : [...state, input.value].sort((a, b) => a - b)];
        if (output === UNKNOWN) return [true, state];
        return [
          output !== null && output.length === state.length && output.every((v, i) => v === state[i]),
          state,
        ];
      },
      ...(options.hash ? { hash: (state: readonly number[]) => state.join(',') } : {}),
      ...(options.equal
        ? { equal: (a: readonly number[], b: readonly number[]) => a.join(',') === b.join(',') }
        : {}),
    });
    const add = (clientId: number, value: number): Operation<SetInput, readonly number[] | null> => ({
      clientId,
      input: { op: 'add', value },
      call: 0,
      output: null,
      return: 100,
    });
    const read = (values: readonly number[] | Unknown): Operation<SetInput, readonly number[] | null> => ({
      clientId: 2,
      input: { op: 'read' },
      call: 25,
      output: values,
      return: 75,
    });

    for (const options of [
      { hash: false, equal: false },
      { hash: true, equal: false },
      { hash: false, equal: true },
      { hash: true, equal: true },
    ]) {
      it(`are checked with hash ${options.hash ? 'on' : 'off'} and equal ${options.equal ? 'on' : 'off'}`, () => {
        const model = setModel(options);
        expect(checkOperations(model, [add(0, 100), add(1, 0), read([100])]).ok).toBe(true);
        expect(checkOperations(model, [add(0, 100), add(1, 110), read([100, 110])]).ok).toBe(true);
        expect(checkOperations(model, [add(0, 100), add(1, 110), read(UNKNOWN)]).ok).toBe(true);
        expect(checkOperations(model, [add(0, 100), add(1, 110), read([100, 100, 110])]).ok).toBe(false);
      });
    }
  });

  describe('limits', () => {
    it('accepts an empty history', () => {
      expect(checkOperations(registerModel, [])).toEqual({ ok: true });
    });

    it('answers unknown when the time is up', () => {
      // 16 concurrent writes and a read of a value nobody wrote: the search must try
      // every subset of writes before it can say no.
      const history = [...Array.from({ length: 16 }, (_, i) => put(i, i + 1, 0, 10)), get(99, 1000, 11, 12)];
      expect(checkOperations(registerModel, history, { timeoutMs: 0 })).toEqual({
        ok: 'unknown',
        reason: 'timeout',
      });
    });

    it('still reports a violation found in another part after the time is up', () => {
      const model: Model<number, RegisterInput & { key: string }, number | null> = {
        ...(registerModel as unknown as Model<number, RegisterInput & { key: string }, number | null>),
        partition: (history) => ['slow', 'bad'].map((key) => history.filter((op) => op.input.key === key)),
      };
      const slow = [
        ...Array.from({ length: 16 }, (_, i) => ({
          ...put(i, i + 1, 0, 10),
          input: { op: 'put' as const, value: i + 1, key: 'slow' },
        })),
        { ...get(99, 1000, 11, 12), input: { op: 'get' as const, key: 'slow' } },
      ];
      const bad = [{ ...get(1, 5, 0, 1), input: { op: 'get' as const, key: 'bad' } }];
      const result = checkOperations(model, [...slow, ...bad], { timeoutMs: 0 });
      expect(result.ok).toBe(false);
    });

    it('checks thousands of operations of one part', () => {
      // 5000 operations; each write overlaps the next write and the read after it.
      const history: RegisterOp[] = [];
      for (let i = 0; i < 5000; i += 2) {
        const t = i * 10;
        history.push(put(i % 4, i, t, t + 25));
        history.push(get((i + 1) % 4, i, t + 16, t + 18));
      }
      expect(checkOperations(registerModel, history).ok).toBe(true);
      history.push(get(9, -1, 60_000, 60_001));
      expect(checkOperations(registerModel, history).ok).toBe(false);
    });

    it.each<[string, Operation<RegisterInput, number | null>[]]>([
      ['a call that is not a number', [{ input: { op: 'get' }, call: Number.NaN, output: 0, return: 1 }]],
      ['a return before the call', [{ input: { op: 'get' }, call: 5, output: 0, return: 4 }]],
      ['no return but a known output', [{ input: { op: 'get' }, call: 5, output: 0 }]],
      [
        'an Infinity return but a known output',
        [{ input: { op: 'get' }, call: 5, output: 0, return: Infinity }],
      ],
      ['an operation that is not an object', [null as unknown as RegisterOp]],
    ])('rejects %s with RAFT_INVALID_ARGUMENT', (_name, history) => {
      expect(codeOf(() => checkOperations(registerModel, history))).toBe('RAFT_INVALID_ARGUMENT');
    });

    it('rejects a negative timeout with RAFT_INVALID_ARGUMENT', () => {
      expect(codeOf(() => checkOperations(registerModel, [], { timeoutMs: -1 }))).toBe(
        'RAFT_INVALID_ARGUMENT',
      );
    });
  });
});
