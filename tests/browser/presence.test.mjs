// The chat page across two `duplex serve` nodes on one real redis-server:
// a page on each node sees the other's messages in order, and both show
// the same member list (from GET /presence/<room>), also when a third
// page joins and leaves on one of them.
//
// redis-server: see redis.mjs.
//
//   node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitStatus } from './helpers.mjs';
import { linesFrom, say, waitLines, waitMembers } from './chat_page.mjs';
import { skipWithoutRedis, startRedis } from './redis.mjs';

test('chat pages on two nodes: messages in order, one member list', { timeout: 90000, skip: skipWithoutRedis }, async (t) => {
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
    await waitMembers(alice, ['alice', 'bob'], { count: true });
    await waitMembers(bob, ['alice', 'bob'], { count: true });
  });

  await t.test('messages cross the nodes in order', async () => {
    const aliceSent = Array.from({ length: 10 }, (_, i) => `alice #${i + 1}`);
    const bobSent = Array.from({ length: 10 }, (_, i) => `bob #${i + 1}`);
    await Promise.all([
      (async () => { for (const m of aliceSent) await say(alice, m); })(),
      (async () => { for (const m of bobSent) await say(bob, m); })(),
    ]);
    for (const [page, from, sent] of [[bob, 'alice', aliceSent], [alice, 'bob', bobSent]]) {
      await waitLines(page, from, sent.length);
      assert.deepEqual(await linesFrom(page, from), sent);
    }
    assert.deepEqual(await linesFrom(alice, 'alice'), aliceSent, 'own lines once, no echo');
  });

  await t.test('a third member on one node shows on both, and leaves from both', async () => {
    const carol = await open(b, 'carol');
    for (const p of [alice, bob, carol]) await waitMembers(p, ['alice', 'bob', 'carol'], { count: true });
    await carol.context().close();
    for (const p of [alice, bob]) await waitMembers(p, ['alice', 'bob'], { count: true });
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
