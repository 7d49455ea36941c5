import { describe, expect, it } from 'vitest';
import { Progress } from './progress.js';
import { nextSnapshotChunks, SnapshotReceiver } from './snapshot-stream.js';

function streaming(): Progress {
  const pr = new Progress(1, 4);
  pr.becomeSnapshot(10);
  return pr;
}

describe('snapshot stream: sender', () => {
  it('sends up to the window of chunks, then one more per acknowledgement', () => {
    const pr = streaming();
    expect(nextSnapshotChunks(pr, 10, 3, 2, false)).toEqual([
      { offset: 0, end: 3, done: false },
      { offset: 3, end: 6, done: false },
    ]);
    expect(nextSnapshotChunks(pr, 10, 3, 2, false)).toEqual([]);
    pr.snapshotAcked(3, 10);
    expect(nextSnapshotChunks(pr, 10, 3, 2, false)).toEqual([{ offset: 6, end: 9, done: false }]);
    pr.snapshotAcked(9, 10);
    expect(nextSnapshotChunks(pr, 10, 3, 2, false)).toEqual([{ offset: 9, end: 10, done: true }]);
    expect(nextSnapshotChunks(pr, 10, 3, 2, false)).toEqual([]);
  });

  it('a heartbeat with no acknowledgement since the last one resends from the acknowledged offset', () => {
    const pr = streaming();
    nextSnapshotChunks(pr, 10, 3, 2, false);
    pr.snapshotAcked(3, 10);
    // An acknowledgement came since: the heartbeat resends nothing.
    expect(nextSnapshotChunks(pr, 10, 3, 2, true)).toEqual([{ offset: 6, end: 9, done: false }]);
    expect(nextSnapshotChunks(pr, 10, 3, 2, true)).toEqual([
      { offset: 3, end: 6, done: false },
      { offset: 6, end: 9, done: false },
    ]);
  });

  it('a follower that lost what it received restarts the stream from its offset', () => {
    const pr = streaming();
    nextSnapshotChunks(pr, 10, 3, 4, false);
    pr.snapshotAcked(6, 10);
    pr.snapshotAcked(0, 10);
    expect(nextSnapshotChunks(pr, 10, 3, 1, false)).toEqual([{ offset: 0, end: 3, done: false }]);
  });

  it('installing moves the follower to probe after the snapshot', () => {
    const pr = streaming();
    pr.snapshotInstalled(10);
    expect(pr).toMatchObject({ state: 'probe', matchIndex: 10, nextIndex: 11 });
  });
});

describe('snapshot stream: receiver', () => {
  const bytes = (...v: number[]) => Uint8Array.from(v);

  it('assembles chunks in order', () => {
    const r = new SnapshotReceiver();
    expect(r.receive(5, 2, 0, bytes(1, 2), false)).toEqual({ complete: false, nextOffset: 2 });
    const done = r.receive(5, 2, 2, bytes(3), true);
    expect(done).toEqual({ complete: true, nextOffset: 3, data: bytes(1, 2, 3) });
  });

  it('refuses a chunk out of order or of another snapshot with the offset it expects', () => {
    const r = new SnapshotReceiver();
    expect(r.receive(5, 2, 3, bytes(1), false)).toEqual({ complete: false, nextOffset: 0 });
    r.receive(5, 2, 0, bytes(1, 2), false);
    expect(r.receive(5, 2, 4, bytes(9), false)).toEqual({ complete: false, nextOffset: 2 });
    expect(r.receive(6, 2, 2, bytes(9), false)).toEqual({ complete: false, nextOffset: 0 });
  });

  it('copies chunks: the transport may reuse its buffer', () => {
    const r = new SnapshotReceiver();
    const buf = bytes(1, 2);
    r.receive(5, 2, 0, buf, false);
    buf[0] = 9;
    const done = r.receive(5, 2, 2, bytes(3), true);
    expect(done.complete && Array.from(done.data)).toEqual([1, 2, 3]);
  });

  it('drops the transfer and what it holds when a chunk grows the snapshot past its limit', () => {
    const r = new SnapshotReceiver(4);
    r.receive(5, 2, 0, bytes(1, 2, 3), false);
    expect(r.bytesReceived).toBe(3);
    expect(r.receive(5, 2, 3, bytes(4, 5), false)).toEqual({ complete: false, tooLarge: true });
    expect(r.bytesReceived).toBe(0);
    // Up to the limit is accepted.
    r.receive(5, 2, 0, bytes(1, 2), false);
    expect(r.receive(5, 2, 2, bytes(3, 4), true)).toEqual({
      complete: true,
      nextOffset: 4,
      data: bytes(1, 2, 3, 4),
    });
  });

  it('frees a half-received snapshot on reset, or when a chunk of another snapshot arrives', () => {
    const r = new SnapshotReceiver();
    r.receive(5, 2, 0, bytes(1, 2), false);
    r.reset();
    expect(r.bytesReceived).toBe(0);
    expect(r.receive(5, 2, 2, bytes(3), true)).toEqual({ complete: false, nextOffset: 0 });
    r.receive(5, 2, 0, bytes(1, 2), false);
    r.receive(6, 3, 2, bytes(3), false);
    expect(r.bytesReceived).toBe(0);
  });
});
