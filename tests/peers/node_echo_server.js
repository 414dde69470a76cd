#!/usr/bin/env node
// Echo server on Node `ws`, an interop peer for duplex tests.
//
//   node node_echo_server.js [--port 0] [--compression on|off] [--tls-cert F --tls-key F]
//
// Listens on 127.0.0.1 only. When ready, prints exactly one line
// `listening PORT` to stdout. Every message comes back with the same type
// (text as text, binary as binary). `ws` answers a close frame with the same
// code (RFC 6455 5.5.1). Exits 0 on SIGTERM or SIGINT.
// Modules: from tests/peers/node_modules (npm ci there), or NODE_PATH.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

function usage(msg) {
  process.stderr.write(`node_echo_server.js: ${msg}\n` +
    'usage: node_echo_server.js [--port 0] [--compression on|off] [--tls-cert F --tls-key F]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: 0, compression: 'on', tlsCert: null, tlsKey: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') opts.port = Number.parseInt(val(), 10);
    else if (a === '--compression') opts.compression = val();
    else if (a === '--tls-cert') opts.tlsCert = val();
    else if (a === '--tls-key') opts.tlsKey = val();
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
  if (opts.compression !== 'on' && opts.compression !== 'off') usage('--compression is on or off');
  if (!!opts.tlsCert !== !!opts.tlsKey) usage('--tls-cert and --tls-key go together');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const server = opts.tlsCert
  ? https.createServer({ cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) })
  : http.createServer();

const wss = new WebSocketServer({
  server,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: opts.compression === 'on',
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

server.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
