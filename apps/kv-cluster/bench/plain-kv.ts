/*
 * The benchmark's floor: a kv server with no consensus and no disk, with the same HTTP
 * and JSON shape as raft-kv's client API (`PUT /kv/KEY {"value"}`, `GET /kv/KEY`), in one
 * Node.js process. What raft-kv costs above it is the price of replication and durability.
 *
 *   node dist/bench/plain-kv.js PORT
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? '0');
const data = new Map<string, string>();

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const key = url.startsWith('/kv/') ? decodeURIComponent(url.slice(4)) : null;
  const send = (status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (url === '/status') return send(200, { role: 'leader' });
  if (key === null) return send(404, { error: 'not_found' });
  if (req.method === 'GET') {
    const value = data.get(key);
    return value === undefined ? send(404, { error: 'not_found' }) : send(200, { key, value });
  }
  if (req.method !== 'PUT') return send(405, { error: 'method_not_allowed' });
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { value?: unknown };
      if (typeof body.value !== 'string') return send(400, { error: 'bad_request' });
      data.set(key, body.value);
      send(200, { ok: true });
    } catch {
      send(400, { error: 'bad_request' });
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
