// The scenarios of bench/gateway's centrifuge-js tests, shared by Node
// (sdk_node.mjs) and headless Chromium (sdk_page.html). run(env) returns
// what the SDK showed per scenario; the Go tests check it. env holds:
//   Centrifuge  the SDK's class (JSON or Protobuf build)
//   WebSocket   the WebSocket class to give the SDK
//   kill(ws)    drops a WebSocket as a network failure would
//   format      "json" or "protobuf"
//   ws          the server's WebSocket endpoint
//   api(method, body)   calls the server HTTP API, resolves to its result
//   sign(claims, secret)  resolves to an HS256 JWT (secret: the server's
//                         when undefined)
//   prefix      unique per run, for channel names
//   only        names of the scenarios to run (all when empty)
const WAIT = 10000;
let env;

function claims(sub, expIn, extra = {}) {
  return { sub, exp: Math.floor(Date.now() / 1000) + expIn, ...extra };
}
const token = (c, secret) => env.sign(c, secret);

// publishSeq publishes {seq: from..to-1} and returns the API's offsets and epoch.
async function publishSeq(channel, from, to) {
  const offsets = [];
  let epoch = '';
  for (let i = from; i < to; i++) {
    const r = await env.api('publish', { channel, data: { seq: i } });
    offsets.push(r.offset);
    epoch = r.epoch;
  }
  return { offsets, epoch };
}

const protobuf = () => env.format === 'protobuf';

const decode = (data) => (protobuf() ? JSON.parse(new TextDecoder().decode(data)) : data);
const encode = (obj) => (protobuf() ? new TextEncoder().encode(JSON.stringify(obj)) : obj);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let chanSeq = 0;
const channel = (ns, name) => `${ns}:${name}-${env.prefix}-${env.format}-${++chanSeq}`;

async function until(what, cond, ms = WAIT) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(5);
  }
}

function once(emitter, event, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    emitter.once(event, (ctx) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}

// A client whose WebSockets go through a gate: cut() terminates them and
// makes new ones fail (a dead port) until open().
function newClient(opts = {}) {
  const gate = { down: false, sockets: [], dials: 0 };
  class GatedWebSocket extends env.WebSocket {
    constructor(url, protocols) {
      gate.dials++;
      super(gate.down ? 'ws://127.0.0.1:1/' : url, protocols);
      gate.sockets.push(this);
    }
  }
  const c = new env.Centrifuge(env.ws, {
    websocket: GatedWebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    ...opts,
  });
  c.gate = gate;
  c.cut = () => {
    gate.down = true;
    for (const s of gate.sockets) env.kill(s);
    gate.sockets = [];
  };
  c.open = () => {
    gate.down = false;
  };
  clients.push(c);
  return c;
}

function track(sub) {
  const got = [];
  sub.on('publication', (ctx) => got.push({ offset: ctx.offset ?? 0, seq: decode(ctx.data).seq }));
  return got;
}

async function connected(c) {
  const p = once(c, 'connected');
  c.connect();
  return p;
}

async function subscribed(c, ch, opts) {
  const sub = c.newSubscription(ch, opts);
  const got = track(sub);
  const p = once(sub, 'subscribed');
  sub.subscribe();
  const ctx = await p;
  return { sub, got, ctx };
}

const pick = (ctx) => ({
  recoverable: ctx.recoverable,
  wasRecovering: ctx.wasRecovering,
  recovered: ctx.recovered,
  epoch: ctx.streamPosition?.epoch ?? '',
  offset: ctx.streamPosition?.offset ?? 0,
});

export const scenarios = {
  async connect() {
    const c = newClient({ token: await token(claims('alice', 3600)) });
    const ctx = await connected(c);
    return { client: ctx.client, state: c.state };
  },

  async badSignature() {
    const c = newClient({ token: await token(claims('mallory', 3600), 'not-the-secret') });
    let connects = 0;
    c.on('connected', () => connects++);
    const p = once(c, 'disconnected');
    c.connect();
    const ctx = await p;
    await sleep(300);
    return { code: ctx.code, reason: ctx.reason, connects, dials: c.gate.dials, state: c.state };
  },

  async order() {
    const c = newClient({ token: await token(claims('bob', 3600)) });
    await connected(c);
    const ch = channel('feed', 'order');
    const { got } = await subscribed(c, ch);
    const api = await publishSeq(ch, 0, 50);
    await until('50 publications', () => got.length >= 50).catch(() => {});
    await sleep(200);
    return { apiOffsets: api.offsets, received: got };
  },

  async recover() {
    const c = newClient({ token: await token(claims('carol', 3600)) });
    await connected(c);
    const ch = channel('chat', 'recover');
    const { sub, got, ctx: first } = await subscribed(c, ch);
    const live = await publishSeq(ch, 0, 5);
    await until('5 live publications', () => got.length >= 5);
    const connecting = once(c, 'connecting');
    c.cut();
    const outage = await connecting;
    const missed = await publishSeq(ch, 5, 25);
    const resubscribed = once(sub, 'subscribed');
    c.open();
    const again = await resubscribed;
    // A failed recovery is reported with what arrived, not as a timeout.
    await until('25 publications', () => got.length >= 25, 3000).catch(() => {});
    const after = await publishSeq(ch, 25, 26);
    await until('26 publications', () => got.length >= 26, 3000).catch(() => {});
    await sleep(200);
    return {
      first: pick(first),
      outageCode: outage.code,
      resubscribed: pick(again),
      apiEpoch: live.epoch,
      apiOffsets: [...live.offsets, ...missed.offsets, ...after.offsets],
      received: got,
      dials: c.gate.dials,
    };
  },

  async serverSide() {
    const chs = [channel('feed', 'srv-a'), channel('feed', 'srv-b')];
    const c = newClient({ token: await token(claims('dave', 3600, { channels: chs })) });
    const subscribedTo = [];
    const received = {};
    c.on('subscribed', (ctx) => subscribedTo.push(ctx.channel));
    c.on('publication', (ctx) => (received[ctx.channel] ??= []).push({ offset: ctx.offset ?? 0, seq: decode(ctx.data).seq }));
    await connected(c);
    await until('server-side subscriptions', () => subscribedTo.length >= 2);
    const a = await publishSeq(chs[0], 0, 10);
    const b = await publishSeq(chs[1], 100, 105);
    await until('15 publications', () => (received[chs[0]]?.length ?? 0) + (received[chs[1]]?.length ?? 0) >= 15);
    await sleep(200);
    return { channels: chs, subscribed: subscribedTo, apiOffsets: [a.offsets, b.offsets], received: [received[chs[0]], received[chs[1]]] };
  },

  async refresh() {
    let calls = 0;
    const getToken = async () => {
      calls++;
      return token(claims('erin', 3600));
    };
    const c = newClient({ token: await token(claims('erin', -60)), getToken });
    await connected(c);
    const expired = { getTokenCalls: calls, dials: c.gate.dials };

    calls = 0;
    const c2 = newClient({ token: await token(claims('erin', 2)), getToken });
    let disconnects = 0;
    let connectings = 0;
    await connected(c2);
    c2.on('disconnected', () => disconnects++);
    c2.on('connecting', () => connectings++);
    const ch = channel('feed', 'refresh');
    const { got } = await subscribed(c2, ch);
    await sleep(3500);
    const short = { getTokenCalls: calls, dials: c2.gate.dials, disconnects, connectings, state: c2.state };
    const api = await publishSeq(ch, 0, 3);
    await until('3 publications', () => got.length >= 3);
    await sleep(200);
    return { expired, short, apiOffsets: api.offsets, received: got };
  },

  async clientPublish() {
    const c = newClient({ token: await token(claims('frank', 3600)) });
    await connected(c);
    const ch = channel('chat', 'pub');
    const { sub, got } = await subscribed(c, ch);
    for (let i = 0; i < 3; i++) await sub.publish(encode({ seq: i }));
    await until('3 own publications', () => got.length >= 3);
    await sleep(200);
    const refusedCh = channel('feed', 'pub');
    const { sub: fs, got: fgot } = await subscribed(c, refusedCh);
    const refused = [];
    for (const publish of [() => fs.publish(encode({ seq: 0 })), () => c.publish(refusedCh, encode({ seq: 0 }))]) {
      try {
        await publish();
        refused.push({ code: 0, message: 'published' });
      } catch (e) {
        refused.push({ code: e.code ?? -1, message: e.message ?? String(e) });
      }
    }
    await sleep(200);
    return { received: got, refused, refusedReceived: fgot.length, state: c.state };
  },
};

const clients = [];

// run runs the scenarios of e.only (all by default) at the same time and
// returns {scenarios: {name: report}}; a report has error when the
// scenario threw, and ms.
export async function run(e) {
  env = e;
  const out = { format: env.format, scenarios: {} };
  const only = env.only?.length ? env.only : Object.keys(scenarios);
  await Promise.all(
    only.map(async (name) => {
      const start = performance.now();
      try {
        out.scenarios[name] = await scenarios[name]();
      } catch (err) {
        out.scenarios[name] = { error: String(err?.stack ?? err) };
      }
      out.scenarios[name].ms = Math.round(performance.now() - start);
    }),
  );
  for (const c of clients) c.disconnect();
  return out;
}
