// Shared helpers for the browser tests: start/stop `duplex serve`, launch
// Debian's Chromium through playwright-core, small page utilities.
//
// Environment:
//   DUPLEX_BIN       the duplex binary (default: <repo>/target/release/duplex)
//   DUPLEX_CHROMIUM  the Chromium executable (default: /usr/bin/chromium)
//
// playwright-core comes from tests/peers (npm ci there). Browsers are never
// downloaded: we drive the system Chromium.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const duplexBin = process.env.DUPLEX_BIN || path.join(repoRoot, 'target', 'release', 'duplex');
export const chromiumPath = process.env.DUPLEX_CHROMIUM || '/usr/bin/chromium';
export const artifactsDir = path.join(repoRoot, 'test-artifacts');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function requireExecutable(file, what, hint) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    throw new Error(`${what} not found or not executable at ${file}: ${hint}`);
  }
}

/** The playwright-core `chromium` object, from tests/peers/node_modules. */
export function loadChromium() {
  const require = createRequire(path.join(repoRoot, 'tests', 'peers', 'package.json'));
  try {
    return require('playwright-core').chromium;
  } catch (e) {
    throw new Error(`playwright-core is not installed: run \`npm ci\` in tests/peers (${e.message})`);
  }
}

/**
 * Launches headless Chromium. playwright gives every launch a fresh temporary
 * profile (it refuses an explicit --user-data-dir with launch()), removed on close.
 */
export async function launchBrowser({ extraArgs = [] } = {}) {
  requireExecutable(chromiumPath, 'Chromium', 'install Debian\'s chromium package or set DUPLEX_CHROMIUM');
  const chromium = loadChromium();
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/**
 * Starts `duplex serve --listen ADDR [extra...]` and waits for its first
 * stdout line `listening on ws://HOST:PORT` (or wss://). Returns
 * { proc, scheme, host, port, wsBase, httpBase, stop() }.
 * Retries for a few seconds when the process exits before listening (for
 * example while a just-freed port is still being released).
 */
export async function startServer({ listen = '127.0.0.1:0', extra = [], retryForMs = 5000 } = {}) {
  requireExecutable(duplexBin, 'duplex binary', 'build it with `cargo build --release -p duplex-cli` or set DUPLEX_BIN');
  const deadline = Date.now() + retryForMs;
  for (;;) {
    try {
      return await startOnce(listen, extra);
    } catch (e) {
      if (!e.exitedEarly || Date.now() > deadline) throw e;
      await sleep(200);
    }
  }
}

function startOnce(listen, extra) {
  const args = ['serve', '--listen', listen, ...extra];
  const proc = spawn(duplexBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout });
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(
      `duplex ${args.join(' ')} printed no "listening on" line within 10 s; stderr:\n${stderr}`)), 10000);
    proc.once('error', (e) => fail(new Error(`cannot start ${duplexBin}: ${e.message}`)));
    exited.then(({ code, signal }) => {
      if (settled) return;
      const err = new Error(`duplex ${args.join(' ')} exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`);
      err.exitedEarly = true;
      fail(err);
    });
    lines.once('line', (line) => {
      if (settled) return;
      const m = /^listening on (wss?):\/\/(\S+):(\d+)\s*$/.exec(line);
      if (!m) {
        fail(new Error(`unexpected first line from duplex serve: ${JSON.stringify(line)}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      lines.on('line', () => {});   // keep draining stdout
      const [, scheme, host, port] = m;
      const httpScheme = scheme === 'wss' ? 'https' : 'http';
      let stopping = null;
      resolve({
        proc,
        scheme,
        host,
        port: Number(port),
        wsBase: `${scheme}://${host}:${port}`,
        httpBase: `${httpScheme}://${host}:${port}`,
        get stderr() { return stderr; },
        /** SIGTERM, then wait for exit (SIGKILL after 5 s). Resolves to { code, signal }. */
        stop() {
          if (!stopping) {
            stopping = (async () => {
              if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
              const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
              const res = await exited;
              clearTimeout(t);
              return res;
            })();
          }
          return stopping;
        },
      });
    });
  });
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Waits until `#status` satisfies the check: 'online' (exact) or a prefix like 'reconnecting'. */
export async function waitStatus(page, expected, timeout = 10000) {
  try {
    await page.waitForFunction(
      (want) => {
        const s = document.querySelector('#status')?.textContent ?? '';
        return want === 'online' || want === 'connecting' ? s === want : s.startsWith(want);
      },
      expected,
      { timeout, polling: 50 },
    );
  } catch (e) {
    const now = await page.textContent('#status').catch(() => '?');
    throw new Error(`${page.url()}: #status did not become "${expected}" within ${timeout} ms (it is "${now}")`);
  }
}
