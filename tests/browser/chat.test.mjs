// The chat page served by `duplex serve` (GET /) in a real Chromium:
// rooms are isolated, messages arrive in order in the other pages of the
// room, member lists fill in, hostile input stays text, and every page
// reconnects by itself when the server restarts on the same port.
//
//   node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { artifactsDir, launchBrowser, startServer, waitStatus } from './helpers.mjs';
import { linesFrom, memberNames, say, waitLines, waitMembers } from './chat_page.mjs';

const RECONNECT_BOUND_MS = 15000;

test('chat page: rooms, ordering, members, hostile input, reconnect after restart', { timeout: 100000 }, async (t) => {
  let server = await startServer();
  t.after(() => server.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const pageErrors = [];
  const open = async (name, room) => {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
    page.on('dialog', (d) => { pageErrors.push(`${name}: unexpected dialog ${d.message()}`); d.dismiss(); });
    await page.goto(`${server.httpBase}/?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`);
    return page;
  };

  // Join one after the other so "X joined" notices are deterministic.
  const alice = await open('alice', 'alpha');
  await waitStatus(alice, 'online');
  const bob = await open('bob', 'alpha');
  await waitStatus(bob, 'online');
  const carol = await open('carol', 'alpha');
  await waitStatus(carol, 'online');
  const dave = await open('dave', 'beta');
  await waitStatus(dave, 'online');
  const alpha = [alice, bob, carol];
  const everyone = [...alpha, dave];

  await t.test('member lists show who is in the room', async () => {
    for (const p of alpha) await waitMembers(p, ['alice', 'bob', 'carol']);
    await waitMembers(dave, ['dave']);
    const notices = await alice.$$eval('#messages .notice', (els) => els.map((e) => e.textContent));
    assert.ok(notices.includes('bob joined') && notices.includes('carol joined'), `alice's notices: ${JSON.stringify(notices)}`);
  });

  const aliceSent = [1, 2, 3, 4, 5].map((i) => `alice #${i}`);
  const bobSent = [1, 2, 3, 4, 5].map((i) => `bob #${i}`);

  await t.test('messages reach the other alpha pages in order, never beta', async () => {
    // Both senders type at the same time; each one's order must hold.
    await Promise.all([
      (async () => { for (const m of aliceSent) await say(alice, m); })(),
      (async () => { for (const m of bobSent) await say(bob, m); })(),
    ]);
    for (const [page, from, sent] of [[bob, 'alice', aliceSent], [carol, 'alice', aliceSent], [alice, 'bob', bobSent], [carol, 'bob', bobSent]]) {
      await waitLines(page, from, sent.length);
      assert.deepEqual(await linesFrom(page, from), sent, `${from}'s lines as shown to ${await page.evaluate(() => window.duplexChat.name)}`);
    }
    // Own messages are shown locally, once (the server does not echo them back).
    assert.deepEqual(await linesFrom(alice, 'alice'), aliceSent);
    assert.deepEqual(await linesFrom(bob, 'bob'), bobSent);
    assert.equal(await alice.locator('#messages .msg.own').count(), 5);
    // Everything above has been delivered; beta saw none of it.
    await dave.waitForTimeout(200);
    assert.equal(await dave.locator('#messages .msg').count(), 0, 'a beta page received alpha messages');
  });

  await t.test('hostile and malformed input is ignored or shown as text', async () => {
    const img = '<img src=x onerror="window.__pwned=1">';
    await say(alice, img);
    await waitLines(carol, 'alice', 6);
    assert.equal((await linesFrom(carol, 'alice'))[5], img);
    // A raw socket (opened from the beta page, same origin) sends junk into alpha, then a leave.
    const sent = await dave.evaluate(async (url) => {
      const ws = new WebSocket(url);
      const received = [];
      ws.onmessage = (e) => received.push(typeof e.data === 'string' ? e.data : '<binary>');
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('raw socket failed')); });
      const junk = [
        'not json', '', 'null', '[1,2,3]', '"string"', '{"type":"message"}',
        '{"type":"message","id":"m","name":"mallory","text":42}',
        '{"type":"message","id":"m","name":"","text":"no name"}',
        '{"type":"message","id":{"x":1},"name":"mallory","text":"bad id"}',
        '{"type":"bogus","id":"m","name":"mallory"}',
        '{"type":"join","id":"m","name":"<i>mallory</i>"}',
        JSON.stringify({ type: 'message', id: 'm', name: '<i>mallory</i>', text: '<script>window.__pwned=2</script><b>bold?</b>', ts: 'yesterday' }),
      ];
      for (const j of junk) ws.send(j);
      ws.send(new Uint8Array([0x7b, 0x7d, 0xff]).buffer);
      ws.send(JSON.stringify({ type: 'leave', id: 'm', name: '<i>mallory</i>' }));
      await new Promise((r) => setTimeout(r, 500));
      ws.close(1000);
      return { junk, received };
    }, `${server.wsBase}/chat/alpha`);
    // The server never sends a client's own messages back to it...
    const echoed = sent.received.filter((r) => r === '<binary>' || sent.junk.includes(r));
    assert.deepEqual(echoed, [], 'the relay sent a client its own messages');
    // ...and the three alpha pages answered the join with a presence.
    const presence = sent.received.map((r) => { try { return JSON.parse(r); } catch { return null; } })
      .filter((m) => m && m.type === 'presence').map((m) => m.name).sort();
    assert.deepEqual(presence, ['alice', 'bob', 'carol'], `raw socket received ${JSON.stringify(sent.received)}`);
    for (const p of [alice, carol]) {
      await waitLines(p, '<i>mallory</i>', 1);
      const lines = await linesFrom(p, '<i>mallory</i>');
      assert.deepEqual(lines, ['<script>window.__pwned=2</script><b>bold?</b>']);
      assert.equal(await p.locator('#messages img, #messages script, #messages b, #messages i, #members i').count(), 0, 'HTML was injected');
      assert.equal(await p.evaluate(() => window.__pwned), undefined);
      // mallory joined and left again
      await waitMembers(p, ['alice', 'bob', 'carol']);
      const notices = await p.$$eval('#messages .notice', (els) => els.map((e) => e.textContent));
      assert.ok(notices.includes('<i>mallory</i> joined') && notices.includes('<i>mallory</i> left'), JSON.stringify(notices));
      // the list follows new lines (scrolled to the bottom)
      const gap = await p.evaluate(() => { const l = document.querySelector('#messages'); return l.scrollHeight - l.scrollTop - l.clientHeight; });
      assert.ok(gap < 4, `the message list stopped following new messages (${gap}px above the bottom)`);
      // nothing else came through
      assert.equal(await p.locator('#messages .msg').count(), 5 + 6 + 1);
    }
    assert.equal(await dave.locator('#messages .msg').count(), 0);
  });

  fs.mkdirSync(artifactsDir, { recursive: true });
  await alice.screenshot({ path: path.join(artifactsDir, 'chat-alpha.png') });

  await t.test('every page reconnects after a server restart on the same port', async () => {
    const port = server.port;
    const { code } = await server.stop();
    assert.equal(code, 0, `duplex serve exited with ${code} on SIGTERM`);
    for (const p of everyone) await waitStatus(p, 'reconnecting', 10000);

    // Typed while offline: shown as pending, sent once back online.
    await say(bob, 'typed while offline');
    assert.equal(await bob.locator('#messages .msg.pending').count(), 1);

    server = await startServer({ listen: `127.0.0.1:${port}` });
    assert.equal(server.port, port);
    const t0 = Date.now();
    for (const p of everyone) await waitStatus(p, 'online', Math.max(1000, RECONNECT_BOUND_MS - (Date.now() - t0)));
    await bob.waitForFunction(() => window.duplexChat.pending === 0 && !document.querySelector('#messages .msg.pending'), null, { timeout: 5000 });

    // Everyone re-joined: the member lists are whole again.
    for (const p of alpha) await waitMembers(p, ['alice', 'bob', 'carol']);
    await waitMembers(dave, ['dave']);

    await say(carol, 'after the restart');
    for (const p of [alice, bob]) {
      await waitLines(p, 'carol', 1);
      assert.deepEqual(await linesFrom(p, 'carol'), ['after the restart']);
    }
    await say(dave, 'beta still works');
    await dave.waitForTimeout(300);
    for (const p of alpha) assert.equal(await p.locator('#messages .msg[data-from="dave"]').count(), 0);
  });

  assert.deepEqual(pageErrors, [], 'JavaScript errors in the pages');
});
