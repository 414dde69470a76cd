// Room history on the chat page (`duplex serve --history N`): a page that
// joins late shows the room's last N lines, in order, then the live ones,
// with no gap and no duplicate between the two; a room it did not join
// gives it nothing. Once on one node, once across two nodes on one real
// redis-server (the history then comes from a Redis stream).
//
//   node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitStatus } from './helpers.mjs';
import { linesFrom, say, waitLines } from './chat_page.mjs';
import { skipWithoutRedis, startRedis } from './redis.mjs';

const HISTORY = 5;
const lines = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `alice #${from + i}`);

/** Opens the chat page of `server` as `name` in `room`, in its own context. */
async function opener(browser, pageErrors) {
  return async (server, name, room = 'alpha') => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
    await page.goto(`${server.httpBase}/?name=${encodeURIComponent(name)}&room=${room}`);
    await waitStatus(page, 'online');
    return page;
  };
}

/**
 * alice (on `first`) says 8 lines, which bob (on `second`) sees; carol
 * then joins on `second` and must show alice's last HISTORY lines, then
 * a live one; dave in another room shows none.
 */
async function lateJoinerSeesTheLastLines(t, first, second) {
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const pageErrors = [];
  const open = await opener(browser, pageErrors);
  const alice = await open(first, 'alice');
  const bob = await open(second, 'bob');
  // bob joined when he shows alice's first line (joins are not announced
  // in the stream; a line sent before his subscription could be missed).
  await assert.doesNotReject(async () => {
    for (let tries = 0; ; tries++) {
      await say(alice, `hello ${tries}`);
      try { await waitLines(bob, 'alice', 1, 500); return; } catch (e) { if (tries > 20) throw e; }
    }
  });
  const greeted = (await linesFrom(bob, 'alice')).length;
  for (const line of lines(1, 8)) await say(alice, line);
  await waitLines(bob, 'alice', greeted + 8);

  const carol = await open(second, 'carol');
  const dave = await open(second, 'dave', 'beta');
  await waitLines(carol, 'alice', HISTORY);
  assert.deepEqual(await linesFrom(carol, 'alice'), lines(8 - HISTORY + 1, 8), 'the last lines, in order');

  await say(alice, 'alice #9');
  await waitLines(carol, 'alice', HISTORY + 1);
  assert.deepEqual(await linesFrom(carol, 'alice'), lines(8 - HISTORY + 1, 9), 'then the live line, no gap, no duplicate');
  assert.deepEqual(await linesFrom(dave, 'alice'), [], 'another room has none of it');
  assert.deepEqual(pageErrors, [], 'JavaScript errors in the pages');
}

test(`chat page with --history ${HISTORY} on one node`, { timeout: 60000 }, async (t) => {
  const server = await startServer({ extra: ['--history', String(HISTORY)] });
  t.after(() => server.stop());
  await lateJoinerSeesTheLastLines(t, server, server);
});

test(`chat page with --history ${HISTORY} across two nodes on Redis`, { timeout: 90000, skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const flags = (id) => ['--history', String(HISTORY), '--redis', redis.url, '--node-id', id,
    '--redis-prefix', `browser-history-${process.pid}`];
  const a = await startServer({ extra: flags('node-a') });
  t.after(() => a.stop());
  const b = await startServer({ extra: flags('node-b') });
  t.after(() => b.stop());
  await lateJoinerSeesTheLastLines(t, a, b);
});
