// Chromium's own WebSocket against `duplex serve`'s /echo, over ws:// and
// wss:// (self-signed certificate): text, binary as ArrayBuffer and as Blob,
// 1 MiB messages, ordering, a clean close, and permessage-deflate negotiated.
//
//   node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { launchBrowser, startServer, tempDir, waitStatus } from './helpers.mjs';

/** A tiny page server on 127.0.0.1, so the socket has an ordinary http origin. */
async function startPageServer() {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><meta charset="utf-8"><title>duplex echo test</title><p>echo test</p>');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${srv.address().port}/`, close: () => new Promise((r) => srv.close(r)) };
}

/**
 * Runs in the page. Returns { extensions, protocol, checks: [{ name, ok, detail }] }.
 * Every check is independent: a failure is recorded, not thrown.
 */
async function echoBattery(url) {
  const checks = [];
  const record = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });

  const open = (binaryType) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = binaryType;
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  // Sends `data` and resolves with the next message (rejects on close / 10 s).
  const roundtrip = (ws, data) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo within 10 s')), 10000);
    ws.onmessage = (e) => { clearTimeout(timer); resolve(e.data); };
    ws.onclose = (e) => { clearTimeout(timer); reject(new Error(`closed ${e.code} ${e.reason}`)); };
    ws.send(data);
  });
  const bytes = async (d) => new Uint8Array(d instanceof Blob ? await d.arrayBuffer() : d);
  const same = (a, b) => {
    if (a.length !== b.length) return `length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `differs at byte ${i}`;
    return '';
  };
  const randomBytes = (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
    return out;
  };
  const MiB = 1 << 20;
  const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);

  async function check(name, fn) {
    try {
      const problem = await fn();
      record(name, !problem, problem || '');
    } catch (e) {
      record(name, false, e.message);
    }
  }
  async function textCheck(ws, name, text) {
    await check(name, async () => {
      const r = await roundtrip(ws, text);
      if (typeof r !== 'string') return `came back as ${Object.prototype.toString.call(r)}`;
      if (r !== text) return `text differs (length ${r.length} vs ${text.length})`;
      return '';
    });
  }
  async function binaryCheck(ws, name, payload, expectType) {
    await check(name, async () => {
      const r = await roundtrip(ws, payload);
      if (!(r instanceof expectType)) return `came back as ${Object.prototype.toString.call(r)}`;
      return same(await bytes(r), await bytes(payload instanceof Uint8Array ? payload.slice().buffer : payload));
    });
  }

  let ws;
  try {
    ws = await open('arraybuffer');
  } catch (e) {
    record('connect', false, e.message);
    return { extensions: null, protocol: null, checks };
  }
  record('connect', true);
  const extensions = ws.extensions;
  const protocol = ws.protocol;

  // binaryType 'arraybuffer'
  await textCheck(ws, 'text-small', 'hello duplex');
  await textCheck(ws, 'text-empty', '');
  await textCheck(ws, 'text-utf8', 'héllo wörld ✓ 日本語 🌍 \u{10FFFF} end');
  await binaryCheck(ws, 'binary-arraybuffer-every-byte', everyByte.slice().buffer, ArrayBuffer);
  await binaryCheck(ws, 'binary-arraybuffer-empty', new ArrayBuffer(0), ArrayBuffer);
  await binaryCheck(ws, 'binary-typedarray-view', new Uint8Array(everyByte.buffer.slice(0), 10, 100), ArrayBuffer);
  await binaryCheck(ws, 'binary-1MiB-random', randomBytes(MiB).buffer, ArrayBuffer);
  await binaryCheck(ws, 'binary-1MiB-compressible', new Uint8Array(MiB).fill(0x61).buffer, ArrayBuffer);
  await textCheck(ws, 'text-1MiB', 'duplex ✓ '.repeat(Math.ceil(MiB / 11)).slice(0, MiB));
  await textCheck(ws, 'text-1MiB-random-ascii', Array.from(randomBytes(MiB), (b) => String.fromCharCode(32 + (b % 95))).join(''));
  await check('order-100-mixed', async () => {
    const got = [];
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of 100 echoes within 10 s`)), 10000);
      ws.onmessage = (e) => { got.push(e.data); if (got.length === 100) { clearTimeout(timer); resolve(); } };
      ws.onclose = (e) => { clearTimeout(timer); reject(new Error(`closed ${e.code}`)); };
    });
    for (let i = 0; i < 100; i++) ws.send(i % 2 ? new Uint8Array([i, i >> 8]).buffer : `message ${i}`);
    await done;
    for (let i = 0; i < 100; i++) {
      const r = got[i];
      if (i % 2) {
        if (!(r instanceof ArrayBuffer) || same(new Uint8Array(r), new Uint8Array([i, 0]))) return `echo ${i} is wrong`;
      } else if (r !== `message ${i}`) {
        return `echo ${i} is ${JSON.stringify(typeof r === 'string' ? r.slice(0, 40) : String(r))}`;
      }
    }
    return '';
  });
  await check('close-1000', () => new Promise((resolve) => {
    const timer = setTimeout(() => resolve('no close event within 5 s'), 5000);
    ws.onclose = (e) => {
      clearTimeout(timer);
      resolve(e.code === 1000 && e.wasClean ? '' : `code ${e.code}, wasClean ${e.wasClean}, reason ${JSON.stringify(e.reason)}`);
    };
    ws.close(1000, 'done');
  }));

  // binaryType 'blob'
  let wsb;
  try {
    wsb = await open('blob');
  } catch (e) {
    record('connect-blob', false, e.message);
    return { extensions, protocol, checks };
  }
  await binaryCheck(wsb, 'blob-every-byte', new Blob([everyByte]), Blob);
  await binaryCheck(wsb, 'blob-from-arraybuffer', everyByte.slice().buffer, Blob);
  await binaryCheck(wsb, 'blob-1MiB-random', new Blob([randomBytes(MiB)]), Blob);
  await textCheck(wsb, 'blob-mode-text-stays-text', 'text while binaryType is blob');
  wsb.close(1000);

  return { extensions, protocol, checks };
}

function assertBattery(result, label) {
  const failed = result.checks.filter((c) => !c.ok);
  assert.deepEqual(failed.map((c) => `${c.name}: ${c.detail}`), [], `${label}: failed checks`);
  assert.ok(result.checks.length >= 15, `${label}: only ${result.checks.length} checks ran`);
  assert.match(result.extensions ?? '', /permessage-deflate/, `${label}: ws.extensions is ${JSON.stringify(result.extensions)}`);
  // The server's default memory policy answers without context takeover;
  // Chromium must take that answer and still compress.
  assert.match(result.extensions, /server_no_context_takeover/, `${label}: ${result.extensions}`);
  assert.match(result.extensions, /client_no_context_takeover/, `${label}: ${result.extensions}`);
}

test('echo over ws:// from Chromium', { timeout: 60000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  assert.equal(server.scheme, 'ws');
  const pages = await startPageServer();
  t.after(() => pages.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const page = await browser.newPage();
  await page.goto(pages.url);
  const result = await page.evaluate(echoBattery, `${server.wsBase}/echo`);
  assertBattery(result, 'ws://');
});

test('echo and chat page over wss:// (self-signed certificate)', { timeout: 60000 }, async (t) => {
  const tmp = tempDir('duplex-tls-');
  t.after(tmp.cleanup);
  const cert = path.join(tmp.dir, 'cert.pem');
  const key = path.join(tmp.dir, 'key.pem');
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', key, '-out', cert,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl could not create a test certificate: ${e.stderr || e.message}`);
  }

  const server = await startServer({ extra: ['--tls-cert', cert, '--tls-key', key] });
  t.after(() => server.stop());
  assert.equal(server.scheme, 'wss', 'with --tls-cert/--tls-key the server must print listening on wss://');
  const pages = await startPageServer();
  t.after(() => pages.close());
  const browser = await launchBrowser({ extraArgs: ['--ignore-certificate-errors'] });
  t.after(() => browser.close());

  const context = await browser.newContext({ ignoreHTTPSErrors: true });

  await t.test('echo battery over wss://', async () => {
    const page = await context.newPage();
    await page.goto(pages.url);
    const result = await page.evaluate(echoBattery, `${server.wsBase}/echo`);
    assertBattery(result, 'wss://');
  });

  await t.test('the chat page over https:// connects with wss:// and compression', async () => {
    const chat = await context.newPage();
    const errors = [];
    chat.on('pageerror', (e) => errors.push(e.message));
    await chat.goto(`${server.httpBase}/?name=tess&room=secure`);
    await waitStatus(chat, 'online');
    assert.match(await chat.evaluate(() => window.duplexChat.socket.url), /^wss:\/\/127\.0\.0\.1:\d+\/chat\/secure\?name=tess$/);
    assert.match(await chat.textContent('#extensions'), /permessage-deflate/);
    assert.deepEqual(errors, []);
  });
});
