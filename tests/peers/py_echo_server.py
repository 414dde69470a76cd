#!/usr/bin/env python3
"""Echo server on Python `websockets` (asyncio API), an interop peer for duplex tests.

    py_echo_server.py [--port 0] [--compression on|off] [--tls-cert F --tls-key F]

Listens on 127.0.0.1 only. When ready, prints exactly one line
`listening PORT` to stdout. Every message comes back with the same type
(text as text, binary as binary). A close frame is answered by the library
with the same code (RFC 6455 5.5.1). Exits 0 on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 64 * 1024 * 1024


async def echo(ws):
    try:
        async for message in ws:
            # str for text frames, bytes for binary: send() keeps the type
            await ws.send(message)
    except ConnectionClosed:
        pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--compression", choices=["on", "off"], default="on")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


async def main(argv):
    args = parse_args(argv)
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None)
        )

    async with serve(
        echo,
        "127.0.0.1",
        args.port,
        compression="deflate" if args.compression == "on" else None,
        max_size=MAX_SIZE,
        ping_interval=None,
        ssl=ctx,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write("listening %d\n" % port)
        sys.stdout.flush()
        await stop
        server.close(close_connections=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
