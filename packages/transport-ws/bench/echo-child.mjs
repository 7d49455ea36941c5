// The far end of the benchmark, in its own process: echoes every message back.
// Usage (forked by bench.mjs): node echo-child.mjs transport|raw
import { WebSocketServer } from 'ws';
import { webSocketTransport } from '../dist/index.js';

const mode = process.argv[2];

if (mode === 'transport') {
  const transport = webSocketTransport({
    name: 'b',
    listen: { host: '127.0.0.1', port: 0 },
    peers: { a: 'ws://127.0.0.1:9' },
    pingIntervalMs: 0,
  });
  await transport.start((m) => transport.send('a', { ...m, from: 'b', to: 'a' }));
  process.send({ ready: transport.address().port });
  process.on('message', async (msg) => {
    if (msg.stop) {
      process.send({ metrics: transport.metrics() });
      await transport.close();
      process.exit(0);
    }
  });
} else if (mode === 'raw') {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
  });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  wss.on('listening', () => process.send({ ready: wss.address().port }));
  process.on('message', (msg) => {
    if (msg.stop) {
      for (const c of wss.clients) c.terminate();
      wss.close(() => process.exit(0));
    }
  });
} else {
  console.error('usage: echo-child.mjs transport|raw');
  process.exit(2);
}
