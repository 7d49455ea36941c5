import {
  ElectionInProgressError,
  InvalidArgumentError,
  NoPeerError,
  NotLeaderError,
  RaftError,
  StoppedError,
  TimeoutError,
} from '@raft/core';
import { describe, expect, it } from 'vitest';
import { checkOperations } from './checker.js';
import { classifyRaftError, createHistoryRecorder } from './history.js';
import { kvModel, type KVModelInput, type KVModelOutput } from './kv-model.js';
import { UNKNOWN } from './types.js';

/** A clock that advances by one on every read. */
function tickingClock(): () => number {
  let t = 0;
  return () => ++t;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    return RaftError.isInstance(err) ? err.code : `not a RaftError: ${String(err)}`;
  }
}

describe('createHistoryRecorder', () => {
  it('stamps calls and returns with the clock', () => {
    const history = createHistoryRecorder<string, number>({ now: tickingClock() });
    const a = history.invoke('c1', 'a');
    const b = history.invoke('c2', 'b');
    history.ok(b, 2);
    history.ok(a, 1);
    expect(history.operations()).toEqual([
      { clientId: 'c1', input: 'a', call: 1, output: 1, return: 4 },
      { clientId: 'c2', input: 'b', call: 2, output: 2, return: 3 },
    ]);
  });

  it('drops failed operations, and keeps unknown and in-flight ones with an unknown outcome', () => {
    const history = createHistoryRecorder<string, number>({ now: tickingClock() });
    const failed = history.invoke(1, 'failed');
    const unknown = history.invoke(1, 'unknown');
    history.invoke(2, 'in flight');
    history.fail(failed);
    history.unknown(unknown);
    expect(history.operations()).toEqual([
      { clientId: 1, input: 'unknown', call: 2, output: UNKNOWN, return: 4 },
      { clientId: 2, input: 'in flight', call: 3, output: UNKNOWN },
    ]);
  });

  it('returns copies: later completions do not change a history already taken', () => {
    const history = createHistoryRecorder<string, number>({ now: tickingClock() });
    const id = history.invoke(1, 'x');
    const before = history.operations();
    history.ok(id, 5);
    expect(before[0]?.output).toBe(UNKNOWN);
    expect(history.operations()[0]?.output).toBe(5);
  });

  it('rejects completing an operation that is not in flight with RAFT_INVALID_ARGUMENT', () => {
    const history = createHistoryRecorder<string, number>();
    const id = history.invoke(1, 'x');
    history.ok(id, 1);
    expect(codeOf(() => history.ok(id, 2))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => history.fail(id))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => history.unknown(99))).toBe('RAFT_INVALID_ARGUMENT');
  });

  describe('record', () => {
    it('records the output of a call that resolves and returns it', async () => {
      const history = createHistoryRecorder<string, number>({ now: tickingClock() });
      await expect(history.record('c', 'x', () => Promise.resolve(7))).resolves.toBe(7);
      expect(history.operations()).toEqual([{ clientId: 'c', input: 'x', call: 1, output: 7, return: 2 }]);
    });

    it('drops a call that failed without effect, and rethrows', async () => {
      const history = createHistoryRecorder<string, number>({ now: tickingClock() });
      const error = new NotLeaderError('n2');
      await expect(history.record('c', 'x', () => Promise.reject(error))).rejects.toBe(error);
      expect(history.operations()).toEqual([]);
    });

    it('keeps a call that may have taken effect as unknown, and rethrows', async () => {
      const history = createHistoryRecorder<string, number>({ now: tickingClock() });
      const error = new TimeoutError();
      await expect(history.record('c', 'x', () => Promise.reject(error))).rejects.toBe(error);
      expect(history.operations()).toEqual([
        { clientId: 'c', input: 'x', call: 1, output: UNKNOWN, return: 2 },
      ]);
    });

    it('uses the classify option', async () => {
      const history = createHistoryRecorder<string, number>({ classify: () => 'fail' });
      await expect(history.record('c', 'x', () => Promise.reject(new TimeoutError()))).rejects.toBeInstanceOf(
        Error,
      );
      expect(history.operations()).toEqual([]);
    });
  });

  it('feeds checkOperations', async () => {
    const history = createHistoryRecorder<KVModelInput, KVModelOutput>({ now: tickingClock() });
    let value: unknown;
    const store = {
      set: (v: unknown): Promise<KVModelOutput> => {
        value = v;
        return Promise.resolve({ ok: true, value: v });
      },
      get: (): Promise<KVModelOutput> =>
        Promise.resolve(value === undefined ? { ok: false, error: 'key_not_found' } : { ok: true, value }),
    };
    await history.record(1, { op: 'get', key: 'k' }, () => store.get());
    await history.record(1, { op: 'set', key: 'k', value: 1 }, () => store.set(1));
    await history.record(2, { op: 'get', key: 'k' }, () => store.get());
    expect(checkOperations(kvModel, history.operations())).toEqual({ ok: true });
    value = 'stale';
    await history.record(2, { op: 'get', key: 'k' }, () => store.get());
    expect(checkOperations(kvModel, history.operations()).ok).toBe(false);
  });
});

describe('classifyRaftError', () => {
  it.each<[string, unknown, 'fail' | 'unknown']>([
    ['RAFT_NOT_LEADER before the command reached the log', new NotLeaderError('n2'), 'fail'],
    [
      'RAFT_NOT_LEADER after it did (indeterminate)',
      new NotLeaderError('n2', { indeterminate: true }),
      'unknown',
    ],
    ['RAFT_ELECTION_IN_PROGRESS', new ElectionInProgressError(), 'fail'],
    ['RAFT_NO_PEER', new NoPeerError('n9'), 'fail'],
    ['RAFT_INVALID_ARGUMENT', new InvalidArgumentError('bad'), 'fail'],
    ['RAFT_TIMEOUT', new TimeoutError(), 'unknown'],
    ['RAFT_STOPPED', new StoppedError(), 'unknown'],
    ['RAFT_ABORTED', new RaftError('RAFT_ABORTED', 'aborted'), 'unknown'],
    ['an error that is not a RaftError', new Error('socket hang up'), 'unknown'],
    ['a thrown string', 'boom', 'unknown'],
  ])('%s', (_name, error, expected) => {
    expect(classifyRaftError(error)).toBe(expected);
  });
});
