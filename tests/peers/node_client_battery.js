#!/usr/bin/env node
// Client check battery on Node `ws` against an ECHO server.
//
//   node node_client_battery.js URL [--compression on|off] [--ca CERT]
//
// Prints one line per check, `ok NAME` or `FAIL NAME: why`, then a line
// `summary: N ok, M failed in T s`, and exits 0 only if every check passed.
//
// Checks (on one connection; after a failed check the next one reconnects):
//   handshake
//   compression-negotiated (--compression on) | compression-off (--compression off)
//   text-SIZE / binary-SIZE for SIZE in 0 1 125 126 65535 65536 16777216
//       (same content and same type back; text mixes 1- to 4-byte UTF-8,
//        binary holds every byte value)
//   fragmented-text, fragmented-binary (send(data, {fin: false}) ..., last with fin: true)
//   ping-pong (a pong with the ping's payload)
//   order-100 (100 small messages, alternating text/binary, sent back to back)
//   close-1000 (close 1000 "bye": the server answers 1000 and closes TCP)
//   close-4000 (second connection, close 4000 "custom ✓": 4000 echoed)
//
// --compression on (default) offers permessage-deflate and checks it was
// negotiated; off offers nothing and checks nothing was negotiated. The line
// `extensions: ...` shows the server's Sec-WebSocket-Extensions answer.
// --ca CERT trusts that CA (PEM) for wss:// URLs.
// Modules: from tests/peers/node_modules (npm ci there), or NODE_PATH.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const MAX_SIZE = 64 * 1024 * 1024;
const SIZES = [0, 1, 125, 126, 65535, 65536, 16 * 1024 * 1024];
const CHECK_TIMEOUT_MS = 120000; // per check (16 MiB echoes take well under 1 s here)
const CLOSE_TIMEOUT_MS = 5000; // how long the client waits for the server to close TCP

// 1-, 2-, 3- and 4-byte UTF-8, including the encoding-length boundaries
const PALETTE = [
  'a', 'Z', ' ', '0', '~', '\x7f',
  'é', 'ж', '\u0080', '\u07ff',
  '✓', '中', '\u0800', '\ufffd', '\uffff',
  '😀', '\u{10000}', '\u{10ffff}',
];
const PALETTE_LEN = PALETTE.map((c) => Buffer.byteLength(c, 'utf8'));

function xorshift32(seed) {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

// n bytes: 0..255 first (every byte value once), then seeded pseudo-random bytes
function binaryPayload(n) {
  const buf = Buffer.allocUnsafe(n);
  const rnd = xorshift32(n + 1);
  for (let i = 0; i < n; i++) buf[i] = i < 256 ? i : rnd() & 0xff;
  return buf;
}

// a string whose UTF-8 encoding is exactly n bytes, mixing 1- to 4-byte characters
function textPayload(n) {
  const rnd = xorshift32(7919 + n);
  const unitTarget = Math.min(n, 999983); // a prime-sized period for large messages
  const parts = [];
  let size = 0;
  while (size + 4 <= unitTarget) {
    const i = rnd() % PALETTE.length;
    parts.push(PALETTE[i]);
    size += PALETTE_LEN[i];
  }
  if (size === 0) return 'x'.repeat(n);
  const unit = parts.join('');
  const reps = Math.floor(n / size);
  let rem = n % size;
  // the tail: whole characters of the unit that fit, padded with ASCII
  const tail = [];
  for (const c of parts) {
    const len = Buffer.byteLength(c, 'utf8');
    if (len > rem) break;
    tail.push(c);
    rem -= len;
  }
  const text = unit.repeat(reps) + tail.join('') + '.'.repeat(rem);
  if (Buffer.byteLength(text, 'utf8') !== n) throw new Error(`textPayload(${n}) is wrong`);
  return text;
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function describe(isBinary, len) {
  return `${isBinary ? 'binary' : 'text'} of ${len} bytes`;
}

class Failed extends Error {}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failed(`${what} within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// One client connection with a receive queue.
class Conn {
  static open(url, opts) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts);
      const conn = new Conn(ws);
      ws.once('upgrade', (res) => { conn.extHeader = res.headers['sec-websocket-extensions'] || ''; });
      ws.once('open', () => resolve(conn));
      ws.once('error', (e) => reject(e));
      ws.once('close', (code) => reject(new Error(`closed during the handshake (${code})`)));
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.extHeader = '';
    this.messages = [];
    this.waiters = [];
    this.pongs = [];
    this.pongWaiters = [];
    this.closed = null;
    this.error = null;
    this.closedPromise = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString('utf8') };
        resolve(this.closed);
        for (const w of this.waiters.splice(0)) w.reject(this.lost());
      });
    });
    ws.on('error', (e) => { this.error = e; });
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(m); else this.messages.push(m);
    });
    ws.on('pong', (data) => {
      this.pongs.push(data);
      for (const w of this.pongWaiters.splice(0)) w();
    });
  }

  lost() {
    const why = this.error ? `: ${this.error.message}` : '';
    return new Failed(`connection closed (${this.closed ? this.closed.code : '?'})${why}`);
  }

  recv() {
    if (this.messages.length) return Promise.resolve(this.messages.shift());
    if (this.closed) return Promise.reject(this.lost());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  nextPong() {
    return new Promise((resolve) => this.pongWaiters.push(resolve));
  }

  send(data, options) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve()));
    });
  }
}

class Battery {
  constructor(url, compression, ca) {
    this.url = url;
    this.compression = compression;
    this.opts = {
      perMessageDeflate: compression === 'on',
      maxPayload: MAX_SIZE,
      handshakeTimeout: 10000,
      closeTimeout: CLOSE_TIMEOUT_MS,
    };
    if (ca) this.opts.ca = [fs.readFileSync(ca)];
    this.conn = null;
    this.passed = 0;
    this.failed = 0;
  }

  report(name, why) {
    if (why === undefined) {
      this.passed++;
      process.stdout.write(`ok ${name}\n`);
    } else {
      this.failed++;
      process.stdout.write(`FAIL ${name}: ${why}\n`);
    }
  }

  async get() {
    if (!this.conn) this.conn = await Conn.open(this.url, this.opts);
    return this.conn;
  }

  drop() {
    if (this.conn) {
      this.conn.ws.terminate();
      this.conn = null;
    }
  }

  async check(name, fn) {
    try {
      await withTimeout(fn(), CHECK_TIMEOUT_MS, 'no answer');
      this.report(name);
    } catch (e) {
      this.report(name, e instanceof Failed ? e.message : `${e.name}: ${e.message}`);
      this.drop();
    }
  }

  async expect(conn, sentBuf, sentBinary) {
    const { data, isBinary } = await conn.recv();
    const got = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    if (isBinary !== sentBinary) {
      throw new Failed(`sent ${describe(sentBinary, sentBuf.length)}, got ${describe(isBinary, got.length)}`);
    }
    if (!got.equals(sentBuf)) {
      throw new Failed(`sent ${describe(sentBinary, sentBuf.length)}, got ${describe(isBinary, got.length)}` +
        ` differing from byte ${firstDifference(sentBuf, got)}`);
    }
  }

  // -- checks -----------------------------------------------------------------

  async handshake() {
    await this.get();
  }

  async extensions() {
    const conn = await this.get();
    process.stdout.write(`extensions: ${conn.extHeader || 'none'}\n`);
    const names = conn.ws.extensions;
    if (this.compression === 'on') {
      if (!names.split(',').includes('permessage-deflate')) {
        throw new Failed(`permessage-deflate was offered but not negotiated (answer: ${conn.extHeader || 'none'})`);
      }
    } else if (names || conn.extHeader) {
      throw new Failed(`no extension was offered but the server answered ${conn.extHeader}`);
    }
  }

  echo(payload, binary) {
    return async () => {
      const conn = await this.get();
      const sentBuf = binary ? payload : Buffer.from(payload, 'utf8');
      await conn.send(payload, { binary });
      await this.expect(conn, sentBuf, binary);
    };
  }

  async fragmentedText() {
    const conn = await this.get();
    const frags = ['frag', 'mented ', 'text: é ж ✓ 中 😀', '', ' and the end'];
    const sends = frags.map((f, i) => conn.send(f, { binary: false, fin: i === frags.length - 1 }));
    await Promise.all(sends);
    await this.expect(conn, Buffer.from(frags.join(''), 'utf8'), false);
  }

  async fragmentedBinary() {
    const conn = await this.get();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const frags = [Buffer.from([0, 1]), all, Buffer.alloc(0), binaryPayload(70000).subarray(69000), Buffer.from([0xff])];
    const sends = frags.map((f, i) => conn.send(f, { binary: true, fin: i === frags.length - 1 }));
    await Promise.all(sends);
    await this.expect(conn, Buffer.concat(frags), true);
  }

  async pingPong() {
    const conn = await this.get();
    const payload = Buffer.from('duplex-ping \x00\xff\x80 ✓', 'latin1');
    const deadline = Date.now() + 10000;
    conn.ws.ping(payload);
    for (;;) {
      const hit = conn.pongs.find((p) => p.equals(payload));
      if (hit) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = conn.pongs.map((p) => p.toString('hex')).join(', ') || 'none';
        throw new Failed(`no pong with the ping's payload within 10 s (pongs seen: ${seen})`);
      }
      await withTimeout(conn.nextPong(), left, 'no pong').catch(() => {});
    }
  }

  async order100() {
    const conn = await this.get();
    const msgs = [];
    for (let i = 0; i < 100; i++) {
      const s = String(i).padStart(3, '0');
      msgs.push(i % 2 === 0
        ? { buf: Buffer.from(`message ${s} ✓`, 'utf8'), binary: false }
        : { buf: Buffer.concat([Buffer.from(`message ${s} `), Buffer.from([0xff])]), binary: true });
    }
    const sends = msgs.map((m) => conn.send(m.binary ? m.buf : m.buf.toString('utf8'), { binary: m.binary }));
    await Promise.all(sends);
    for (let i = 0; i < msgs.length; i++) {
      const { data, isBinary } = await conn.recv();
      if (isBinary !== msgs[i].binary || !data.equals(msgs[i].buf)) {
        throw new Failed(`message ${i}: sent ${describe(msgs[i].binary, msgs[i].buf.length)} ` +
          `${JSON.stringify(msgs[i].buf.toString('latin1'))}, got ${describe(isBinary, data.length)} ` +
          `${JSON.stringify(data.subarray(0, 40).toString('latin1'))}`);
      }
    }
  }

  async closeWith(code, reason, fresh) {
    if (fresh) this.drop();
    const conn = await this.get();
    this.conn = null;
    const t0 = Date.now();
    conn.ws.close(code, reason);
    const { code: got, reason: gotReason } = await conn.closedPromise;
    const dt = Date.now() - t0;
    if (got === 1006) throw new Failed('no close frame from the server (connection dropped)');
    if (got !== code) throw new Failed(`sent close ${code}, server answered ${got} ${JSON.stringify(gotReason)}`);
    if (dt >= CLOSE_TIMEOUT_MS * 0.9) {
      throw new Failed(`the server answered ${got} but did not close TCP within ${CLOSE_TIMEOUT_MS / 1000} s`);
    }
    process.stdout.write(`closed: sent ${code} ${JSON.stringify(reason)}, received ${got} ${JSON.stringify(gotReason)}\n`);
  }

  async run() {
    const t0 = Date.now();
    await this.check('handshake', () => this.handshake());
    if (this.failed) {
      process.stdout.write('summary: 0 ok, 1 failed (no connection, nothing else checked)\n');
      return 1;
    }
    await this.check(this.compression === 'on' ? 'compression-negotiated' : 'compression-off',
      () => this.extensions());
    for (const [kind, make, binary] of [['text', textPayload, false], ['binary', binaryPayload, true]]) {
      for (const n of SIZES) await this.check(`${kind}-${n}`, this.echo(make(n), binary));
    }
    await this.check('fragmented-text', () => this.fragmentedText());
    await this.check('fragmented-binary', () => this.fragmentedBinary());
    await this.check('ping-pong', () => this.pingPong());
    await this.check('order-100', () => this.order100());
    await this.check('close-1000', () => this.closeWith(1000, 'bye', false));
    await this.check('close-4000', () => this.closeWith(4000, 'custom ✓', true));
    this.drop();
    process.stdout.write(`summary: ${this.passed} ok, ${this.failed} failed in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return this.failed === 0 ? 0 : 1;
  }
}

function main(argv) {
  const usage = 'usage: node_client_battery.js URL [--compression on|off] [--ca CERT]';
  let url = null;
  let compression = 'on';
  let ca = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--compression' && i + 1 < argv.length) compression = argv[++i];
    else if (a === '--ca' && i + 1 < argv.length) ca = argv[++i];
    else if (!a.startsWith('--') && url === null) url = a;
    else { process.stderr.write(`${usage}\n`); return Promise.resolve(2); }
  }
  if (!url || !/^wss?:\/\//.test(url) || (compression !== 'on' && compression !== 'off')) {
    process.stderr.write(`${usage}\n`);
    return Promise.resolve(2);
  }
  return new Battery(url, compression, ca).run();
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => { process.stdout.write(`FAIL battery: ${e.stack || e}\n`); process.exit(1); },
);
