// A real redis-server for the browser tests: a free port of 127.0.0.1,
// no persistence, killed when the test ends. The binary comes from
// DUPLEX_REDIS_SERVER or PATH; without it a test is skipped, except with
// CI=true or DUPLEX_REQUIRE_PEERS=1, where it fails.

import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

export const redisBin = process.env.DUPLEX_REDIS_SERVER || 'redis-server';
export const redisRequired = process.env.CI === 'true' || process.env.DUPLEX_REQUIRE_PEERS === '1';
export const haveRedis = !spawnSync(redisBin, ['--version']).error;

/** The `skip` option of a test that needs Redis: false when it runs. */
export const skipWithoutRedis = !haveRedis && !redisRequired ? `no ${redisBin} (set DUPLEX_REDIS_SERVER)` : false;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** Starts redis-server; resolves once it answers PING, to { port, url, stop }. */
export async function startRedis() {
  if (!haveRedis) throw new Error(`${redisBin} is required here (CI=true or DUPLEX_REQUIRE_PEERS=1)`);
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
