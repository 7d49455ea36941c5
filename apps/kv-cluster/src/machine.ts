import { InvalidArgumentError } from '@raft/core';
import type { PeerId, StateMachine } from '@raft/core';
import { KVStore } from '@raft/kv';
import type { KVCommand, KVQuery, KVReply, KVState } from '@raft/kv';

/**
 * Sets (`url`) or forgets (`url: null`) a peer's address in the replicated peer
 * directory. Every node applies it and updates its transport's peer map.
 */
export interface PeerCommand {
  op: 'peer';
  id: PeerId;
  url: string | null;
}

/** A command of the app's state machine: a key-value command, or a peer directory change. */
export type AppCommand = KVCommand | PeerCommand;

/** What a {@link PeerCommand} replies. */
export type PeerReply = { ok: true } | { ok: false; error: 'bad_command'; message: string };

/** A reply of the app's state machine. */
export type AppReply = KVReply | PeerReply;

/** The state: the key-value map and the peer directory (id → `ws://` URL). */
export interface AppState {
  kv: KVState;
  /** Kept sorted by id, so every peer's snapshot bytes are the same for the same state. */
  peers: Map<PeerId, string>;
}

/**
 * Watches the peer directory. Called while entries apply, in log order: it must not
 * throw or block, and must not change the state.
 */
export interface DirectoryObserver {
  /** A peer command changed the directory: `url` is the peer's new URL, or null when it was forgotten. */
  changed(id: PeerId, url: string | null, peers: ReadonlyMap<PeerId, string>): void;
  /** A snapshot was restored (at start, or sent by the leader): `peers` is its directory. */
  restored(peers: ReadonlyMap<PeerId, string>): void;
}

/** Node ids: they appear in URLs, paths and logs (the `--id` rule). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Longest peer URL the directory takes. */
const MAX_URL_LENGTH = 512;

/**
 * Checks a peer URL as the directory stores it: `ws://HOST:PORT[/]` or `wss://HOST:PORT[/]`, normalized to
 * `URL.href`. Returns the URL or why it is not one. Deterministic (no DNS, no clock).
 */
export function normalizePeerUrl(raw: string): string | { problem: string } {
  if (raw.length > MAX_URL_LENGTH) return { problem: `the URL is longer than ${MAX_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `${JSON.stringify(raw)} is not a URL (expected ws://HOST:PORT or wss://HOST:PORT)` };
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    return { problem: `the URL must start with ws:// or wss://, got ${JSON.stringify(raw)}` };
  if (url.port === '' && !(url.protocol === 'ws:' ? /:80(?:\/|$)/ : /:443(?:\/|$)/).test(raw))
    return { problem: `the URL must name a port, got ${JSON.stringify(raw)}` };
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '')
    return { problem: 'the URL must have no query, fragment or credentials' };
  return url.href;
}

function badCommand(message: string): PeerReply {
  return { ok: false, error: 'bad_command', message };
}

function sorted(peers: Iterable<[PeerId, string]>): Map<PeerId, string> {
  return new Map([...peers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Applies a peer command to `state`; its reply, and whether the directory changed. */
function applyPeer(
  command: Record<string, unknown>,
  state: AppState,
): { reply: PeerReply; changed: boolean } {
  const { id, url } = command;
  if (typeof id !== 'string' || !ID_PATTERN.test(id))
    return { reply: badCommand('id must be 1 to 64 letters, digits, _ . or -'), changed: false };
  if (url === null) return { reply: { ok: true }, changed: state.peers.delete(id) };
  if (typeof url !== 'string')
    return { reply: badCommand('url must be a ws:// or wss:// URL, or null'), changed: false };
  const href = normalizePeerUrl(url);
  if (typeof href !== 'string') return { reply: badCommand(href.problem), changed: false };
  if (state.peers.get(id) === href) return { reply: { ok: true }, changed: false };
  const next = new Map(state.peers);
  next.set(id, href);
  state.peers = sorted(next);
  return { reply: { ok: true }, changed: true };
}

const MAGIC = Buffer.from('RKV1', 'latin1');

/**
 * The snapshot: `RKV1`, the length of the directory's JSON (uint32, big-endian), the
 * directory as JSON (`[[id, url], ...]`, sorted by id), then `@raft/kv`'s snapshot of the map.
 */
async function encodeSnapshot(state: AppState): Promise<Uint8Array> {
  const directory = Buffer.from(JSON.stringify([...state.peers]), 'utf8');
  // A frame of the map at a time, giving the event loop back in between (see KVStore).
  const kv = await KVStore.snapshot(state.kv);
  const out = Buffer.allocUnsafe(MAGIC.length + 4 + directory.length + kv.length);
  MAGIC.copy(out, 0);
  out.writeUInt32BE(directory.length, MAGIC.length);
  directory.copy(out, MAGIC.length + 4);
  out.set(kv, MAGIC.length + 4 + directory.length);
  return out;
}

async function decodeSnapshot(bytes: Uint8Array, name?: PeerId): Promise<AppState> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC))
    throw new InvalidArgumentError('not a raft-kv snapshot (no RKV1 header)');
  const length = buf.readUInt32BE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + length > buf.length)
    throw new InvalidArgumentError('not a raft-kv snapshot (truncated peer directory)');
  let entries: unknown;
  try {
    entries = JSON.parse(buf.subarray(start, start + length).toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError('not a raft-kv snapshot (unreadable peer directory)', { cause: err });
  }
  if (
    !Array.isArray(entries) ||
    !entries.every(
      (e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string',
    )
  ) {
    throw new InvalidArgumentError('not a raft-kv snapshot (malformed peer directory)');
  }
  return {
    kv: await KVStore.restore(buf.subarray(start + length), name),
    peers: sorted(entries as [PeerId, string][]),
  };
}

/**
 * The app's state machine: `@raft/kv`'s {@link KVStore} plus a replicated peer
 * directory. `{ op: 'peer', id, url }` sets a peer's address (`url: null` forgets it);
 * everything else goes to `KVStore`. Snapshots hold both.
 *
 * It is deterministic: `observe` only watches (every node passes its own, to update its
 * transport), and the directory starts from `initial` (the node's `--peers`).
 *
 * @param initial the directory before any command: the `--peers` of the node.
 * @param observe told of every change of the directory, and of every restored snapshot.
 */
export function appMachine(
  initial: ReadonlyMap<PeerId, string>,
  observe?: DirectoryObserver,
): StateMachine<AppState, AppCommand, KVQuery, AppReply> {
  const start = sorted(initial);
  return {
    init(name: PeerId): AppState {
      return { kv: KVStore.init(name), peers: new Map(start) };
    },
    handleWrite(command: AppCommand, state: AppState): [AppReply, AppState] {
      const c = command as unknown;
      if (typeof c === 'object' && c !== null && (c as { op?: unknown }).op === 'peer') {
        const { reply, changed } = applyPeer(c as Record<string, unknown>, state);
        if (changed) {
          const { id } = c as PeerCommand;
          observe?.changed(id, state.peers.get(id) ?? null, state.peers);
        }
        return [reply, state];
      }
      const [reply, kv] = KVStore.handleWrite(command as KVCommand, state.kv);
      state.kv = kv;
      return [reply, state];
    },
    handleRead(query: KVQuery, state: AppState): AppReply {
      return KVStore.handleRead(query, state.kv);
    },
    snapshot(state: AppState): Promise<Uint8Array> {
      return encodeSnapshot(state);
    },
    async restore(snapshot: Uint8Array, name: PeerId): Promise<AppState> {
      const state = await decodeSnapshot(snapshot, name);
      observe?.restored(state.peers);
      return state;
    },
  };
}
