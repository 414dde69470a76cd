// One client connection for the adapter tests: offers a subprotocol and
// permessage-deflate, reads the server's first message (what the server
// saw), sends a text, a binary and a 100 kB text message and reads their
// echoes, closes with 1000, and prints one JSON line with what it
// negotiated and got.
//
// usage: node node_probe_client.js URL PROTOCOL
'use strict';

const WebSocket = require('ws');

const [url, protocol] = process.argv.slice(2);
const big = 'x'.repeat(100000);
const ws = new WebSocket(url, [protocol], { perMessageDeflate: true });
const got = [];

ws.on('open', () => {
  ws.send('hello');
  ws.send(Buffer.from([0, 1, 255]));
  ws.send(big);
});
ws.on('message', (data, isBinary) => {
  got.push(isBinary ? [...data] : data.toString());
  if (got.length === 4) {
    console.log(JSON.stringify({
      protocol: ws.protocol,
      extensions: ws.extensions,
      server_saw: got[0],
      text: got[1],
      binary: got[2],
      big_ok: got[3] === big,
    }));
    ws.close(1000);
  }
});
ws.on('error', (e) => {
  console.error(`probe: ${e.message}`);
  process.exit(1);
});
