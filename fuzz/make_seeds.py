#!/usr/bin/env python3
"""Writes the seed corpora, seeds/<target>/<name>, from the RFC examples.

Each seed is the harness's settings bytes (see the layout in the docs of
src/<target>.rs) followed by an example from RFC 6455 (§1.3 handshake,
§5.7 frames) or RFC 7692 (§7.2.3 compressed messages). Run it from fuzz/
after changing a harness's input layout: python3 make_seeds.py
"""
import os
import shutil
import struct

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7


def masked(first, payload):
    """A client frame (masked with the §5.7 key)."""
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def text(s):
    """A harness text: one length byte, then the bytes."""
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def messages(*ms):
    """Messages as the inflate and extensions harnesses read them."""
    return b"".join(struct.pack("<H", len(m)) + m for m in ms)


# RFC 6455 §5.7
HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HEL_LO = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
PING = bytes.fromhex("890548656c6c6f")
PONG_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")
BIN_256 = bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256))
# 64 KiB in the 8-byte length form; the payload is cut short (a frame
# still arriving), so the seed stays small.
BIN_64K_HEAD = bytes([0x82, 0x7F]) + struct.pack(">Q", 65536) + b"\x00" * 16
CLOSE_1000 = bytes([0x88, 0x05, 0x03, 0xE8]) + b"bye"

# RFC 7692 §7.2.3
DEFLATE_HELLO = bytes.fromhex("f248cdc9c90700")
DEFLATE_SHARED = bytes.fromhex("f200110000")
DEFLATE_STORED = bytes.fromhex("000500faff48656c6c6f00")
DEFLATE_BFINAL = bytes.fromhex("f348cdc9c9070000")
DEFLATE_TWO_BLOCKS = bytes.fromhex("f24805000000ffffcac9c90700")
DEFLATE_EMPTY = bytes([0x00])

# RFC 6455 §1.3
REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
REQUEST_DEFLATE = REQUEST.replace(
    b"Sec-WebSocket-Version",
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Version",
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
)
RESPONSE_DEFLATE = RESPONSE.replace(
    b"\r\n\r\n",
    b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15\r\n\r\n",
)
RESPONSE_403 = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"


def frame(first, payload, client):
    """A frame as the given role sends it (a client masks)."""
    if client:
        return masked(first, payload)
    return bytes([first, len(payload)]) + payload


def engine(flags, stream, seed=0x1234, max_log2=2):
    return bytes([flags]) + struct.pack("<H", seed) + bytes([max_log2]) + stream


# Deflate bytes of the engine harness: windows 15/15, no flags; level 1.
WINDOWS_15 = 0xFC


def engine_deflate(flags, stream, params=WINDOWS_15, level=0x01, **cut):
    head = engine(flags, b"", **cut)
    return head + bytes([params, level]) + stream


SERVER, CLIENT, LEND, CLOSE_FIRST = 0, 1, 2, 32

SEEDS = {
    "engine": {
        # A server reads client (masked) frames; a client reads unmasked ones.
        "server-hello": engine(SERVER, HELLO_MASKED),
        "server-hello-lent": engine(SERVER | LEND, HELLO_MASKED + HELLO_MASKED, max_log2=4),
        "server-pong-close": engine(SERVER, PONG_MASKED + masked(0x88, CLOSE_1000[2:])),
        "server-close-first": engine(SERVER | CLOSE_FIRST, HELLO_MASKED + masked(0x88, b"\x03\xe8")),
        "client-hello": engine(CLIENT, HELLO_UNMASKED),
        "client-fragmented": engine(CLIENT | LEND, HEL_LO + PING + HELLO_UNMASKED, max_log2=1),
        "client-256": engine(CLIENT | LEND, BIN_256, max_log2=6),
        "client-64k-head": engine(CLIENT, BIN_64K_HEAD),
        "client-close": engine(CLIENT, CLOSE_1000),
    },
    "engine_deflate": {
        "client-hello": engine_deflate(CLIENT, bytes([0xC1, 7]) + DEFLATE_HELLO),
        "client-shared-window": engine_deflate(
            CLIENT,
            bytes([0xC1, 7]) + DEFLATE_HELLO + bytes([0xC1, 5]) + DEFLATE_SHARED,
        ),
        "client-stored": engine_deflate(CLIENT, bytes([0xC1, 11]) + DEFLATE_STORED),
        "client-bfinal": engine_deflate(CLIENT, bytes([0xC1, 8]) + DEFLATE_BFINAL),
        "client-two-blocks": engine_deflate(CLIENT, bytes([0xC1, 13]) + DEFLATE_TWO_BLOCKS),
        "client-fragmented": engine_deflate(
            CLIENT | LEND,
            bytes([0x41, 3]) + DEFLATE_HELLO[:3] + bytes([0x80, 4]) + DEFLATE_HELLO[3:],
            max_log2=1,
        ),
        "client-empty-no-context": engine_deflate(
            CLIENT, bytes([0xC1, 1]) + DEFLATE_EMPTY + bytes([0xC1, 7]) + DEFLATE_HELLO, params=WINDOWS_15 | 1
        ),
        "server-hello-window-8": engine_deflate(
            SERVER | LEND, masked(0xC1, DEFLATE_HELLO) + HELLO_MASKED, params=0x03, level=0x09
        ),
    },
    "server_handshake": {
        # flags, deflate settings (3), subprotocol, headers, status, content type, request
        "rfc-request": bytes([0, 0, 0, 1]) + text("") + bytes([0]) + struct.pack("<H", 404)
        + text("text/plain") + REQUEST,
        "deflate-chat-cookie": bytes([0x03, 0, 0, 1]) + text("") + bytes([1]) + text("Set-Cookie")
        + text("id=1; Path=/") + struct.pack("<H", 426) + text("text/html") + REQUEST_DEFLATE,
        "injection": bytes([0x02, 0, 0, 1]) + text("") + bytes([2]) + text("X-A: b") + text("c")
        + text("X-B") + text("d\r\nSet-Cookie: e") + struct.pack("<H", 200) + text("text/plain\r\n")
        + REQUEST,
    },
    "client_handshake": {
        # flags, client and server deflate settings (3 each), host, target,
        # subprotocols, headers, response
        "rfc-response": bytes([0x04] + [0, 0, 1] * 2) + text("server.example.com") + text("/chat")
        + bytes([2]) + text("chat") + text("superchat") + bytes([1]) + text("Origin")
        + text("http://example.com") + RESPONSE,
        "deflate": bytes([0x07] + [0, 0, 1] * 2) + text("server.example.com") + text("/chat")
        + bytes([1]) + text("chat") + bytes([0]) + RESPONSE_DEFLATE,
        "rejected": bytes([0x00] + [0, 0, 1] * 2) + text("h:8080") + text("/a b?q=1") + bytes([0])
        + bytes([1]) + text("Authorization") + text("Bearer x\r\nCookie: y") + RESPONSE_403,
    },
    "extensions": {
        # client and server settings (3 each), header, offer by hand, messages
        "browser-offer": bytes([0, 0, 1] * 2) + text("permessage-deflate; client_max_window_bits")
        + text("permessage-deflate") + bytes([1]) + text("server_max_window_bits") + bytes([1])
        + text("10") + messages(b"Hello", b"Hello", b""),
        "rfc7692-offers": bytes([0x03, 0x5A, 0x09, 0x01, 0x62, 0x06])
        + text('permessage-deflate; client_no_context_takeover; server_max_window_bits="10", '
               "permessage-deflate; client_max_window_bits, permessage-deflate")
        + text("x-webkit-deflate-frame") + bytes([2]) + text("a") + bytes([0]) + text("b")
        + bytes([1]) + text("c d") + messages(bytes(range(256)) * 2),
    },
    "inflate": {
        # flags, limit, frame cuts (3), messages
        "hello": bytes([0, 9]) + struct.pack("<H", 7) + bytes([1]) + messages(DEFLATE_HELLO),
        "shared-window": bytes([0, 9]) + struct.pack("<H", 9) + bytes([2])
        + messages(DEFLATE_HELLO, DEFLATE_SHARED),
        "stored-bfinal-two": bytes([0, 9]) + struct.pack("<H", 3) + bytes([3])
        + messages(DEFLATE_STORED, DEFLATE_BFINAL, DEFLATE_SHARED, DEFLATE_TWO_BLOCKS),
        "at-limit": bytes([1, 2]) + struct.pack("<H", 5) + bytes([1])
        + messages(DEFLATE_HELLO, DEFLATE_EMPTY, DEFLATE_HELLO),
        "over-limit": bytes([0, 1]) + struct.pack("<H", 5) + bytes([0]) + messages(DEFLATE_HELLO),
    },
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for target, seeds in SEEDS.items():
        folder = os.path.join(here, "seeds", target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for name, data in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    print(sum(len(s) for s in SEEDS.values()), "seeds written to", os.path.join(here, "seeds"))


if __name__ == "__main__":
    main()
