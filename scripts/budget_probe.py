#!/usr/bin/env python3
"""What large messages and non-reading clients can make `duplex serve` hold.

Starts the server (the release binary) with the given extra flags and runs
the two cases the hardening issue measured, reading the server's peak
resident memory (VmHWM) for each:

  frames: N connections each send most of one large frame and stop there
  echo:   N /echo clients each send one large message and never read

    python3 scripts/budget_probe.py [--connections 24] [--size-mib 15] -- [serve flags]

The README's table of limits quotes its figures. Loopback only.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "target", "release", "duplex")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        (
            f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return s


def header(length):
    # Binary, FIN, masked with a zero key (the payload stays as sent).
    return struct.pack("!BBQ", 0x82, 0x80 | 127, length) + b"\0\0\0\0"


def run_case(name, flags, connections, size):
    server = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = server.stdout.readline()
    port = int(line.rsplit(":", 1)[1])
    base = status(server.pid, "VmRSS")
    sockets = []
    payload = b"\0" * (1 << 20)
    try:
        for _ in range(connections):
            s = connect(port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sockets.append(s)
        # frames: most of a frame one MiB longer than what is sent.
        length = size + (1 << 20) if name == "frames" else size
        for s in sockets:
            try:
                s.sendall(header(length))
                for _ in range(size >> 20):
                    s.sendall(payload)
            except OSError:
                pass
        time.sleep(2)
        peak = status(server.pid, "VmHWM")
        closed = 0
        codes = {}
        for s in sockets:
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
            except (socket.timeout, OSError):
                data = None
            if data == b"":
                closed += 1
            elif data and data.startswith(b"\x88"):
                code = struct.unpack("!H", data[2:4])[0]
                codes[code] = codes.get(code, 0) + 1
        print(
            f"{name}: {connections} x {size >> 20} MiB, flags {' '.join(flags) or '(defaults)'}: "
            f"peak RSS {(peak - base) >> 20} MiB above idle; closes seen first {codes or 'none'}, "
            f"plain EOF {closed}"
        )
    finally:
        for s in sockets:
            s.close()
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=24)
    parser.add_argument("--size-mib", type=int, default=15)
    parser.add_argument("--case", choices=["frames", "echo", "both"], default="both")
    parser.add_argument("flags", nargs="*")
    args = parser.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"budget_probe: build {BIN} first (cargo build --release -p duplex-cli)")
    cases = ["frames", "echo"] if args.case == "both" else [args.case]
    for case in cases:
        run_case(case, args.flags, args.connections, args.size_mib << 20)


if __name__ == "__main__":
    main()
