import type { Server } from 'node:http';
import { describe } from 'vitest';
import type { PeerId, Transport } from '@raft/core';
import { transportSuite } from '@raft/testkit/transport';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransportOptions } from '../src/index.js';
import { closeServer, listeningServer } from './helpers.js';

/**
 * Each peer gets an HTTP server on a free port first, so every URL is known before any
 * transport exists; a restarted peer attaches to the same server, hence the same URL.
 */
function harness(extra: Partial<WebSocketTransportOptions>) {
  let servers = new Map<PeerId, Server>();
  let urls: Record<PeerId, string> = {};
  const make = (name: PeerId): Transport =>
    webSocketTransport({
      name,
      server: servers.get(name)!,
      peers: urls,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      ...extra,
    });
  return {
    async setup(names: PeerId[]) {
      servers = new Map();
      urls = {};
      for (const name of names) {
        const { server, url } = await listeningServer();
        servers.set(name, server);
        urls[name] = url;
      }
      return Object.fromEntries(names.map((name) => [name, make(name)]));
    },
    async restart(name: PeerId) {
      return Promise.resolve(make(name));
    },
    async teardown() {
      for (const server of servers.values()) await closeServer(server);
    },
    supports: { ordered: true },
  };
}

describe('webSocketTransport', () => {
  transportSuite(harness({}));
});

describe('webSocketTransport with a cluster secret', () => {
  transportSuite(harness({ secret: 'conformance-secret-0123456789abcdef' }));
});
