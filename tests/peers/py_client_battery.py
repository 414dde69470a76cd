#!/usr/bin/env python3
"""Client check battery on Python `websockets` (asyncio API) against an ECHO server.

    py_client_battery.py URL [--compression on|off] [--ca CERT]

Prints one line per check, `ok NAME` or `FAIL NAME: why`, then a line
`summary: N ok, M failed in T s`, and exits 0 only if every check passed.

Checks (on one connection; after a failed check the next one reconnects):
  handshake
  compression-negotiated (--compression on) | compression-off (--compression off)
  text-SIZE / binary-SIZE for SIZE in 0 1 125 126 65535 65536 16777216
      (same content and same type back; text mixes 1- to 4-byte UTF-8,
       binary holds every byte value)
  fragmented-text (async iterator of fragments), fragmented-binary (list)
  ping-pong (a pong with the ping's payload)
  order-100 (100 small messages, alternating text/binary, sent back to back)
  close-1000 (close 1000 "bye": the server answers 1000 and closes TCP)
  close-4000 (second connection, close 4000 "custom ✓": 4000 echoed)

--compression on (default) offers permessage-deflate and checks it was
negotiated; off offers nothing and checks nothing was negotiated. The line
`extensions: ...` shows the server's Sec-WebSocket-Extensions answer.
--ca CERT trusts that CA (PEM) for wss:// URLs.
"""

import argparse
import asyncio
import random
import ssl
import sys
import time

from websockets.asyncio.client import connect

MAX_SIZE = 64 * 1024 * 1024
SIZES = [0, 1, 125, 126, 65535, 65536, 16 * 1024 * 1024]
CHECK_TIMEOUT = 120.0  # seconds per check (16 MiB echoes take well under 1 s here)
CLOSE_TIMEOUT = 5.0  # how long the client waits for the server to close TCP

# 1-, 2-, 3- and 4-byte UTF-8, including the encoding-length boundaries
PALETTE = [
    "a", "Z", " ", "0", "~", "\x7f",
    "é", "ж", "\u0080", "\u07ff",
    "✓", "中", "\u0800", "\ufffd", "\uffff",
    "😀", "\U00010000", "\U0010ffff",
]
PALETTE_LEN = [len(c.encode("utf-8")) for c in PALETTE]


def binary_payload(n):
    """n bytes: 0..255 first (every byte value once), then seeded random bytes."""
    head = bytes(range(256))[:n]
    if n <= 256:
        return head
    return head + random.Random(n).randbytes(n - 256)


def text_payload(n):
    """A str whose UTF-8 encoding is exactly n bytes, mixing 1- to 4-byte characters."""
    rng = random.Random(7919 + n)
    unit_target = min(n, 999_983)  # a prime-sized period for large messages
    parts, size = [], 0
    while size + 4 <= unit_target:
        for i in rng.choices(range(len(PALETTE)), k=max(1, (unit_target - size) // 4)):
            parts.append(PALETTE[i])
            size += PALETTE_LEN[i]
    unit = "".join(parts)
    if size == 0:
        return "x" * n
    reps, rem = divmod(n, size)
    # the tail: a prefix of the unit cut at a character boundary, padded with ASCII
    tail = unit.encode("utf-8")[:rem].decode("utf-8", "ignore")
    tail += "." * (rem - len(tail.encode("utf-8")))
    text = unit * reps + tail
    assert len(text.encode("utf-8")) == n
    return text


def describe(v):
    kind = "text" if isinstance(v, str) else "binary" if isinstance(v, bytes) else type(v).__name__
    n = len(v.encode("utf-8")) if isinstance(v, str) else len(v)
    return "%s of %d bytes" % (kind, n)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


class Failed(Exception):
    pass


class Battery:
    def __init__(self, url, compression, ca):
        self.url = url
        self.compression = compression
        self.ssl = None
        if url.startswith("wss://"):
            self.ssl = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        self.ws = None
        self.passed = 0
        self.failed = 0

    def report(self, name, why=None):
        if why is None:
            self.passed += 1
            print("ok %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, why), flush=True)

    async def open(self):
        return await connect(
            self.url,
            compression="deflate" if self.compression == "on" else None,
            max_size=MAX_SIZE,
            ping_interval=None,
            open_timeout=10,
            close_timeout=CLOSE_TIMEOUT,
            ssl=self.ssl,
        )

    async def conn(self):
        if self.ws is None:
            self.ws = await self.open()
        return self.ws

    async def check(self, name, coro_fn):
        try:
            await asyncio.wait_for(coro_fn(), CHECK_TIMEOUT)
        except Failed as e:
            self.report(name, str(e))
            await self.drop()
        except asyncio.TimeoutError:
            self.report(name, "no answer within %.0f s" % CHECK_TIMEOUT)
            await self.drop()
        except Exception as e:  # connection errors, closed connections, ...
            self.report(name, "%s: %s" % (type(e).__name__, e))
            await self.drop()
        else:
            self.report(name)

    async def drop(self):
        if self.ws is not None:
            ws, self.ws = self.ws, None
            try:
                ws.transport.abort()
            except Exception:
                pass

    # -- checks ---------------------------------------------------------------

    async def handshake(self):
        await self.conn()

    async def extensions(self):
        ws = await self.conn()
        offered = ws.request.headers.get_all("Sec-WebSocket-Extensions")
        answered = ws.response.headers.get_all("Sec-WebSocket-Extensions")
        print("extensions: %s" % (", ".join(answered) or "none"), flush=True)
        names = [e.name for e in ws.protocol.extensions]
        if self.compression == "on":
            if not offered:
                raise Failed("client did not offer permessage-deflate")
            if "permessage-deflate" not in names:
                raise Failed("permessage-deflate was offered but not negotiated (answer: %s)"
                             % (", ".join(answered) or "none"))
        elif names or answered:
            raise Failed("no extension was offered but the server answered %s" % ", ".join(answered))

    async def expect(self, ws, sent):
        got = await ws.recv()
        if type(got) is not type(sent):
            raise Failed("sent %s, got %s" % (describe(sent), describe(got)))
        if got != sent:
            if isinstance(sent, str):
                a, b = sent.encode("utf-8"), got.encode("utf-8")
            else:
                a, b = sent, got
            raise Failed("sent %s, got %s differing from byte %d"
                         % (describe(sent), describe(got), first_difference(a, b)))

    def echo(self, msg):
        async def run():
            ws = await self.conn()
            await ws.send(msg)
            await self.expect(ws, msg)
        return run

    async def fragmented_text(self):
        ws = await self.conn()
        frags = ["frag", "mented ", "text: é ж ✓ 中 😀", "", " and the end"]

        async def gen():
            for f in frags:
                yield f

        await ws.send(gen())
        await self.expect(ws, "".join(frags))

    async def fragmented_binary(self):
        ws = await self.conn()
        frags = [b"\x00\x01", bytes(range(256)), b"", binary_payload(70000)[-1000:], b"\xff"]
        await ws.send(frags)
        await self.expect(ws, b"".join(frags))

    async def ping_pong(self):
        ws = await self.conn()
        payload = b"duplex-ping \x00\xff\x80 \xe2\x9c\x93"
        # websockets resolves the waiter only for a pong carrying this payload
        waiter = await ws.ping(payload)
        try:
            await asyncio.wait_for(waiter, 10)
        except asyncio.TimeoutError:
            raise Failed("no pong with the ping's payload within 10 s") from None

    async def order_100(self):
        ws = await self.conn()
        msgs = []
        for i in range(100):
            msgs.append("message %03d ✓" % i if i % 2 == 0 else b"message %03d \xff" % i)
        for m in msgs:
            await ws.send(m)
        for i, m in enumerate(msgs):
            got = await ws.recv()
            if got != m or type(got) is not type(m):
                raise Failed("message %d: sent %r, got %r" % (i, m, got[:40]))

    async def close_with(self, code, reason, reconnect):
        if reconnect:
            await self.drop()
        ws = await self.conn()
        self.ws = None
        t0 = time.monotonic()
        await ws.close(code, reason)
        dt = time.monotonic() - t0
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            raise Failed("no close frame from the server (connection dropped)")
        if rcvd.code != code:
            raise Failed("sent close %d, server answered %d %r" % (code, rcvd.code, rcvd.reason))
        if dt >= CLOSE_TIMEOUT * 0.9:
            raise Failed("the server answered %d but did not close TCP within %.0f s"
                         % (rcvd.code, CLOSE_TIMEOUT))
        print("closed: sent %d %r, received %d %r" % (code, reason, rcvd.code, rcvd.reason), flush=True)

    async def run(self):
        t0 = time.monotonic()
        await self.check("handshake", self.handshake)
        if self.failed:
            print("summary: 0 ok, 1 failed (no connection, nothing else checked)", flush=True)
            return 1
        await self.check("compression-negotiated" if self.compression == "on" else "compression-off",
                         self.extensions)
        for kind, make in (("text", text_payload), ("binary", binary_payload)):
            for n in SIZES:
                await self.check("%s-%d" % (kind, n), self.echo(make(n)))
        await self.check("fragmented-text", self.fragmented_text)
        await self.check("fragmented-binary", self.fragmented_binary)
        await self.check("ping-pong", self.ping_pong)
        await self.check("order-100", self.order_100)
        await self.check("close-1000", lambda: self.close_with(1000, "bye", False))
        await self.check("close-4000", lambda: self.close_with(4000, "custom ✓", True))
        print("summary: %d ok, %d failed in %.1f s"
              % (self.passed, self.failed, time.monotonic() - t0), flush=True)
        return 0 if self.failed == 0 else 1


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--compression", choices=["on", "off"], default="on")
    p.add_argument("--ca", help="PEM file of a CA to trust for wss://")
    args = p.parse_args(argv)
    if not args.url.startswith(("ws://", "wss://")):
        p.error("URL must start with ws:// or wss://")
    return asyncio.run(Battery(args.url, args.compression, args.ca).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
