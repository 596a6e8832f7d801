// Subscriber for wsgate's shared-stream interop test, using Node's `ws`
// package with permessage-deflate and its default context takeover.
//
// Usage: node node_sub.mjs ws://127.0.0.1:PORT/ N
//
// It prints "open" once connected, receives N text messages, and prints
// one JSON line: the negotiated extensions and the messages, in order.
import { WebSocket } from 'ws';

const url = process.argv[2];
const n = Number(process.argv[3]);
if (!url || !(n > 0)) {
  console.error('usage: node node_sub.mjs ws://host:port/ N');
  process.exit(2);
}
const ws = new WebSocket(url, { perMessageDeflate: true });
const msgs = [];
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: `timeout after ${msgs.length} messages`, msgs }));
  process.exit(1);
}, 30000);
ws.on('open', () => console.log('open'));
ws.on('message', (data, isBinary) => {
  msgs.push(isBinary ? '(binary)' : data.toString('utf8'));
  if (msgs.length === n) {
    clearTimeout(timer);
    console.log(JSON.stringify({ ok: true, extensions: ws.extensions, msgs }));
    ws.close(1000);
  }
});
ws.on('error', (err) => {
  console.log(JSON.stringify({ ok: false, error: String(err), msgs }));
  process.exit(1);
});
ws.on('close', () => process.exit(0));
