import type { RaftPeer } from './runtime/peer.js';
import type { PeerId } from './types.js';

/**
 * The process-wide registry of peers started with `register` (the default), so that the
 * API's functions accept a peer's name as the Elixir library's do.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- peers of every machine type share one registry
type AnyPeer = RaftPeer<any, any, any, any>;

const registry = new Map<PeerId, AnyPeer>();

/** Whether a peer of this name is registered (started, or starting). */
export function isRegistered(name: PeerId): boolean {
  return registry.has(name);
}

export function register(peer: AnyPeer): void {
  registry.set(peer.name, peer);
}

/** Removes `peer` from the registry, if it is the one registered under its name. */
export function unregister(peer: AnyPeer): void {
  if (registry.get(peer.name) === peer) registry.delete(peer.name);
}

/** Looks up a peer started in this process (and done starting). */
export function lookupPeer(name: PeerId): RaftPeer<unknown, unknown, unknown, unknown> | undefined {
  const peer = registry.get(name);
  return peer?.booted === true ? peer : undefined;
}
