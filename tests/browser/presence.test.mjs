// The chat page across two `duplex serve` nodes on one real redis-server:
// a page on each node sees the other's messages in order, and both show
// the same member list (from GET /presence/<room>), also when a third
// page joins and leaves on one of them.
//
// redis-server comes from DUPLEX_REDIS_SERVER or PATH; without it the
// test is skipped, except with CI=true or DUPLEX_REQUIRE_PEERS=1, where it
// fails.
//
//   node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { launchBrowser, startServer, waitStatus } from './helpers.mjs';

const redisBin = process.env.DUPLEX_REDIS_SERVER || 'redis-server';
const required = process.env.CI === 'true' || process.env.DUPLEX_REQUIRE_PEERS === '1';
const haveRedis = !spawnSync(redisBin, ['--version']).error;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** redis-server on a free port, no persistence; resolves once it answers PING. */
async function startRedis() {
  const port = await freePort();
  const proc = spawn(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('error', () => resolve(false));
      sock.once('connect', () => sock.write('PING\r\n'));
      sock.once('data', (d) => { sock.destroy(); resolve(d.toString().startsWith('+PONG')); });
    });
    if (ok) return { port, url: `redis://127.0.0.1:${port}`, stop: () => proc.kill('SIGKILL') };
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`redis-server on ${port} did not answer PING`); }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function say(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

function linesFrom(page, from) {
  return page.$$eval('#messages .msg', (els, who) => els.filter((e) => e.dataset.from === who).map((e) => e.dataset.text), from);
}

async function waitMembers(page, names, timeout = 10000) {
  const want = [...names].sort();
  try {
    await page.waitForFunction(
      (w) => JSON.stringify([...document.querySelectorAll('#members li')].map((e) => e.dataset.name).sort()) === JSON.stringify(w)
        && document.querySelector('#member-count').dataset.count === String(w.length),
      want,
      { timeout, polling: 50 },
    );
  } catch {
    const got = await page.$$eval('#members li', (els) => els.map((e) => e.dataset.name).sort());
    const count = await page.textContent('#member-count');
    throw new Error(`${page.url()}: members ${JSON.stringify(got)} (count "${count}"), want ${JSON.stringify(want)}`);
  }
}

test('chat pages on two nodes: messages in order, one member list', { timeout: 90000, skip: !haveRedis && !required ? `no ${redisBin} (set DUPLEX_REDIS_SERVER)` : false }, async (t) => {
  assert.ok(haveRedis, `${redisBin} is required here (CI=true or DUPLEX_REQUIRE_PEERS=1)`);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const flags = (id) => ['--redis', redis.url, '--node-id', id, '--redis-prefix', `browser-${process.pid}`];
  const a = await startServer({ extra: flags('node-a') });
  t.after(() => a.stop());
  const b = await startServer({ extra: flags('node-b') });
  t.after(() => b.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const pageErrors = [];
  const open = async (server, name) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
    await page.goto(`${server.httpBase}/?name=${encodeURIComponent(name)}&room=alpha`);
    await waitStatus(page, 'online');
    return page;
  };
  const alice = await open(a, 'alice');
  const bob = await open(b, 'bob');

  await t.test('both pages list both members', async () => {
    await waitMembers(alice, ['alice', 'bob']);
    await waitMembers(bob, ['alice', 'bob']);
  });

  await t.test('messages cross the nodes in order', async () => {
    const aliceSent = Array.from({ length: 10 }, (_, i) => `alice #${i + 1}`);
    const bobSent = Array.from({ length: 10 }, (_, i) => `bob #${i + 1}`);
    await Promise.all([
      (async () => { for (const m of aliceSent) await say(alice, m); })(),
      (async () => { for (const m of bobSent) await say(bob, m); })(),
    ]);
    for (const [page, from, sent] of [[bob, 'alice', aliceSent], [alice, 'bob', bobSent]]) {
      await page.waitForFunction(([who, n]) => [...document.querySelectorAll('#messages .msg')]
        .filter((e) => e.dataset.from === who).length >= n, [from, sent.length], { timeout: 10000, polling: 50 });
      assert.deepEqual(await linesFrom(page, from), sent);
    }
    assert.deepEqual(await linesFrom(alice, 'alice'), aliceSent, 'own lines once, no echo');
  });

  await t.test('a third member on one node shows on both, and leaves from both', async () => {
    const carol = await open(b, 'carol');
    for (const p of [alice, bob, carol]) await waitMembers(p, ['alice', 'bob', 'carol']);
    await carol.context().close();
    for (const p of [alice, bob]) await waitMembers(p, ['alice', 'bob']);
  });

  await t.test('GET /presence/<room> agrees on both nodes', async () => {
    for (const server of [a, b]) {
      const res = await fetch(`${server.httpBase}/presence/alpha`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { room: 'alpha', count: 2, members: ['alice', 'bob'], nodes: 2, partial: false });
    }
  });

  assert.deepEqual(pageErrors, [], 'JavaScript errors in the pages');
});
