// Runs the centrifuge-js scenarios of scenarios.mjs in Node with the SDK's
// JSON or Protobuf build and the ws package, and prints the report as one
// JSON line for bench/gateway's TestNodeSDK. Configuration comes in the
// environment variable SDK_TEST_CONFIG: {ws, api, apiKey, secret, format
// ("json" or "protobuf"), prefix (unique per run, for channel names)};
// SDK_TEST_ONLY may name scenarios (comma separated).
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { run } from './scenarios.mjs';

const cfg = JSON.parse(process.env.SDK_TEST_CONFIG);
const { Centrifuge } = cfg.format === 'protobuf' ? await import('centrifuge/build/protobuf') : await import('centrifuge');

const b64 = (b) => Buffer.from(b).toString('base64url');

const out = await run({
  Centrifuge,
  WebSocket,
  kill: (s) => s.terminate(),
  format: cfg.format,
  ws: cfg.ws,
  prefix: cfg.prefix,
  only: process.env.SDK_TEST_ONLY ? process.env.SDK_TEST_ONLY.split(',') : [],
  async sign(claims, secret = cfg.secret) {
    const signed = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64(JSON.stringify(claims));
    return signed + '.' + crypto.createHmac('sha256', secret).update(signed).digest('base64url');
  },
  async api(method, body) {
    const res = await fetch(`${cfg.api}/${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-API-Key': cfg.apiKey },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`api ${method}: HTTP ${res.status} ${text}`);
    const reply = JSON.parse(text);
    if (reply.error) throw new Error(`api ${method}: error ${JSON.stringify(reply.error)}`);
    return reply.result;
  },
});
out.node = process.version;
console.log(JSON.stringify(out));
process.exit(0);
