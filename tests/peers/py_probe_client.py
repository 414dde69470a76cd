"""One client connection for the adapter tests: offers a subprotocol and
permessage-deflate, reads the server's first message (what the server saw),
sends a text, a binary and a 100 kB text message and reads their echoes,
closes with 1000, and prints one JSON line with what it negotiated and got.

usage: py_probe_client.py URL PROTOCOL
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url, protocol):
    big = "x" * 100_000
    async with connect(url, subprotocols=[protocol], compression="deflate") as ws:
        server_saw = await ws.recv()
        await ws.send("hello")
        text = await ws.recv()
        await ws.send(b"\x00\x01\xff")
        binary = await ws.recv()
        await ws.send(big)
        echoed_big = await ws.recv()
        print(
            json.dumps(
                {
                    "protocol": ws.subprotocol,
                    "extensions": ws.response.headers.get("Sec-WebSocket-Extensions", ""),
                    "server_saw": server_saw,
                    "text": text,
                    "binary": list(binary),
                    "big_ok": echoed_big == big,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
