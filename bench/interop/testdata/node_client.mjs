// Interop client for wsgate's echo server, using Node's `ws` package.
//
// Usage: node node_client.mjs ws://127.0.0.1:PORT/ [deflate]
//
// It connects, round-trips text and binary messages at several sizes and
// checks every echo byte for byte (and its type), pings with a payload and
// waits for the matching pong, then closes with 1000 and waits for the
// server's close frame. It prints one JSON summary line on stdout and exits
// 0 only if every check passed.
//
// With "deflate" it offers permessage-deflate (perMessageDeflate: true, ws's
// defaults: it compresses messages of 1 KiB and more), round-trips five
// compressible JSON messages as well, and reports the negotiated
// ws.extensions.
import { WebSocket } from 'ws';

const url = process.argv[2];
const deflate = process.argv[3] === 'deflate';
if (!url || (process.argv[3] !== undefined && !deflate)) {
  console.error('usage: node node_client.mjs ws://host:port/ [deflate]');
  process.exit(2);
}

const SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000];
const JSON_SIZES = [64, 600, 4096, 4096, 65536]; // deflate only
const TIMEOUT_MS = 20000;

const summary = {
  ok: false,
  url,
  ws: null,
  protocol: null,
  extensions: null,
  roundTrips: 0,
  bytes: 0,
  pongs: 0,
  closeCode: null,
  closeReason: null,
  errors: [],
};

function fail(msg) {
  summary.errors.push(msg);
}

// textPayload returns a string whose UTF-8 encoding is exactly n bytes and
// mixes 1-, 2-, 3- and 4-byte characters.
function textPayload(n) {
  const runes = ['a', 'é', '€', '😀', 'z', ' ', 'ß', '中'];
  let s = '';
  let len = 0;
  for (let i = 0; ; i++) {
    const r = runes[(i * 7 + n) % runes.length];
    const rl = Buffer.byteLength(r);
    if (len + rl > n) break;
    s += r;
    len += rl;
  }
  return s + 'x'.repeat(n - len);
}

// jsonPayload returns n bytes of ticker JSON (an array padded with spaces),
// deterministic for a seed.
function jsonPayload(n, seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  const rnd = (m) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % m;
  };
  const syms = ['BTC-USD', 'ETH-USD', 'SOL-USD'];
  let s = '[';
  for (let i = 0; ; i++) {
    const item = (i > 0 ? ',' : '') +
      `{"s":"${syms[rnd(3)]}","b":${43000 + rnd(300)}.${rnd(100)},"a":${43000 + rnd(300)}.${rnd(100)},"t":${1700000000000 + i * 37}}`;
    if (s.length + item.length + 1 > n) break;
    s += item;
  }
  return (s + ' '.repeat(Math.max(0, n - 1 - s.length)) + ']').slice(0, n);
}

// binaryPayload returns n deterministic pseudo-random bytes.
function binaryPayload(n, seed) {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function toBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

try {
  const pkg = await import('ws/package.json', { with: { type: 'json' } });
  summary.ws = pkg.default.version;
} catch {
  // The version is informational only.
}

const ws = new WebSocket(url, { perMessageDeflate: deflate, handshakeTimeout: 5000 });

// One queue of waiters per event kind, so that each step awaits exactly the
// next event of its kind and an unexpected extra event is noticed.
const waiters = { message: [], pong: [] };
const early = { message: [], pong: [] };
function next(kind) {
  if (early[kind].length > 0) return Promise.resolve(early[kind].shift());
  return new Promise((resolve) => waiters[kind].push(resolve));
}
function deliver(kind, value) {
  const w = waiters[kind].shift();
  if (w) w(value);
  else early[kind].push(value);
}

// Subscribed at once: 'open' must not fire before anyone listens.
const opened = new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});
ws.on('message', (data, isBinary) => deliver('message', { data: toBuffer(data), isBinary }));
ws.on('pong', (data) => deliver('pong', toBuffer(data)));
ws.on('error', (err) => fail(`socket error: ${err.message}`));

const closed = new Promise((resolve) => {
  ws.on('close', (code, reason) => {
    summary.closeCode = code;
    summary.closeReason = reason.toString();
    resolve();
  });
});

async function run() {
  await opened;
  summary.protocol = ws.protocol;
  summary.extensions = ws.extensions;

  const plan = [];
  let seed = 1;
  for (const size of SIZES) {
    for (const isBinary of [false, true]) {
      plan.push({ size, isBinary, want: isBinary ? binaryPayload(size, seed++) : Buffer.from(textPayload(size), 'utf8') });
    }
  }
  if (deflate) {
    for (const size of JSON_SIZES) {
      plan.push({ size, isBinary: false, want: Buffer.from(jsonPayload(size, size), 'utf8') });
    }
  }
  for (const { size, isBinary, want } of plan) {
    if (want.length !== size) {
      fail(`test bug: payload of ${want.length} bytes, want ${size}`);
      continue;
    }
    ws.send(isBinary ? want : want.toString('utf8'), { binary: isBinary });
    const got = await next('message');
    const kind = isBinary ? 'binary' : 'text';
    if (got.isBinary !== isBinary) {
      fail(`${kind} ${size}: echo came back as ${got.isBinary ? 'binary' : 'text'}`);
    }
    if (!got.data.equals(want)) {
      let at = 0;
      while (at < Math.min(got.data.length, want.length) && got.data[at] === want[at]) at++;
      fail(`${kind} ${size}: echo differs (got ${got.data.length} bytes, first difference at ${at})`);
    }
    summary.roundTrips++;
    summary.bytes += size;
  }

  for (const p of [Buffer.alloc(0), Buffer.from('node-ping'), binaryPayload(125, 99)]) {
    ws.ping(p);
    const pong = await next('pong');
    if (!pong.equals(p)) {
      fail(`ping of ${p.length} bytes: pong payload differs (${pong.length} bytes)`);
    }
    summary.pongs++;
  }

  ws.close(1000, 'node done');
  await closed;
  if (summary.closeCode !== 1000) {
    fail(`close: got code ${summary.closeCode}, want 1000`);
  }
  if (early.message.length > 0 || early.pong.length > 0) {
    fail(`unexpected extra events: ${early.message.length} messages, ${early.pong.length} pongs`);
  }
}

const timer = setTimeout(() => {
  fail(`timed out after ${TIMEOUT_MS} ms`);
  finish();
}, TIMEOUT_MS);

function finish() {
  clearTimeout(timer);
  summary.ok = summary.errors.length === 0;
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(summary.ok ? 0 : 1);
}

run().then(finish, (err) => {
  fail(`error: ${err && err.message ? err.message : err}`);
  finish();
});
