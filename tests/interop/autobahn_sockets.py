#!/usr/bin/env python3
"""Autobahn-style cases over real sockets, with frames written byte by byte
in Python (no WebSocket library): against `gust serve --echo` (we are the
client) and `gust connect --echo` (we are the server). The core's own
Autobahn-style suite runs these in memory; here they go through the adapter
and the command line.

usage: autobahn_sockets.py server|client GUST
Ends with "N passed, M failed". Every read is bounded.
"""
import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import time

passed = failed = 0


def check(ok, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def frame(b0, payload=b"", mask=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([b0])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class Peer:
    def __init__(self, sock):
        self.s = sock
        self.s.settimeout(5)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read_more(self):
        try:
            d = self.s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return False
        if not d:
            return False
        self.buf += d
        return True

    def frame(self):
        """(opcode, fin, payload) or None at EOF/timeout."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n, hs = b1 & 0x7F, 2
                if n == 126:
                    hs = 4
                elif n == 127:
                    hs = 10
                masked = b1 & 0x80
                hs += 4 if masked else 0
                if len(self.buf) >= hs:
                    if (b1 & 0x7F) == 126:
                        n = struct.unpack("!H", self.buf[2:4])[0]
                    elif (b1 & 0x7F) == 127:
                        n = struct.unpack("!Q", self.buf[2:10])[0]
                    if len(self.buf) >= hs + n:
                        payload = self.buf[hs:hs + n]
                        if masked:
                            key = self.buf[hs - 4:hs]
                            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
                        self.buf = self.buf[hs + n:]
                        return b0 & 0x0F, bool(b0 & 0x80), payload, bool(masked)
            if not self.read_more():
                return None

    def eof(self, timeout=5):
        end = time.time() + timeout
        while time.time() < end:
            if not self.read_more():
                return True
        return False


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


# Each case: (name, frames to send, expectation). Expectations:
#   ("echo", [(opcode, payload)...])  these frames come back, then we close
#   ("close", code)                    the peer fails/closes with this code
#   ("close_echo", code)               the peer echoes our close with this code
CASES = [
    ("1.1.1 empty text", [(0x81, b"")], ("echo", [(1, b"")])),
    ("1.1.2 125 B text", [(0x81, b"*" * 125)], ("echo", [(1, b"*" * 125)])),
    ("1.1.3 126 B text", [(0x81, b"*" * 126)], ("echo", [(1, b"*" * 126)])),
    ("1.2.6 64 KiB binary", [(0x82, b"\xfe" * 65536)], ("echo", [(2, b"\xfe" * 65536)])),
    ("2.2 ping with payload gets a pong", [(0x89, b"Hello")], ("echo", [(10, b"Hello")])),
    ("2.3 ping with binary payload", [(0x89, b"\x00\xff\xfe\xfd\xfc")], ("echo", [(10, b"\x00\xff\xfe\xfd\xfc")])),
    ("2.4 ping with 125 B", [(0x89, b"*" * 125)], ("echo", [(10, b"*" * 125)])),
    ("2.5 ping with 126 B fails", [(0x89, b"*" * 126)], ("close", 1002)),
    ("2.6 unsolicited pong is ignored", [(0x8A, b"x"), (0x81, b"after")], ("echo", [(1, b"after")])),
    ("3.1 RSV1 without an extension", [(0xC1, b"x")], ("close", 1002)),
    ("3.2 RSV2", [(0xA1, b"x")], ("close", 1002)),
    ("3.3 RSV3", [(0x91, b"x")], ("close", 1002)),
    ("4.1.1 reserved opcode 3", [(0x83, b"")], ("close", 1002)),
    ("4.2.1 reserved control opcode 11", [(0x8B, b"")], ("close", 1002)),
    ("5.1 fragmented ping", [(0x09, b"x"), (0x80, b"y")], ("close", 1002)),
    ("5.6 text in two fragments", [(0x01, b"frag1"), (0x80, b"frag2")], ("echo", [(1, b"frag1frag2")])),
    ("5.7 ping between fragments", [(0x01, b"a"), (0x89, b"p"), (0x80, b"b")], ("echo", [(10, b"p"), (1, b"ab")])),
    ("5.9 continuation without a start", [(0x80, b"x")], ("close", 1002)),
    ("5.18 new message inside a fragmented one", [(0x01, b"a"), (0x81, b"b")], ("close", 1002)),
    ("6.3.1 invalid UTF-8 text", [(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")], ("close", 1007)),
    ("6.4.x UTF-8 split across fragments", [(0x01, b"\xce"), (0x80, b"\xba")], ("echo", [(1, "κ".encode())])),
    ("6.x invalid UTF-8 across fragments", [(0x01, b"\xce"), (0x80, b"\x41")], ("close", 1007)),
    ("7.1.1 text then close: echo, then close", [(0x81, b"Hello World!"), (0x88, struct.pack("!H", 1000))],
     ("echo_then_close", [(1, b"Hello World!")], 1000)),
    ("7.3.1 close without payload", [(0x88, b"")], ("close_echo", 1005)),
    ("7.3.2 close with one byte", [(0x88, b"\x03")], ("close", 1002)),
    ("7.3.6 close reason of 123 B", [(0x88, struct.pack("!H", 1000) + b"*" * 123)], ("close_echo", 1000)),
    ("7.5.1 close reason not UTF-8", [(0x88, struct.pack("!H", 1000) + b"\xce\xba\xe1\xbd")], ("close", 1007)),
] + [(f"7.7 valid close code {c}", [(0x88, struct.pack("!H", c))], ("close_echo", c))
     for c in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)] \
  + [(f"7.9 invalid close code {c}", [(0x88, struct.pack("!H", c))], ("close", 1002))
     for c in (0, 999, 1004, 1005, 1006, 1016, 2000, 2999, 5000, 65535)]


def run_case(peer, name, frames, expect, masked_out):
    for b0, payload in frames:
        peer.send(frame(b0, payload, mask=masked_out))
    kind = expect[0]
    got = []
    if kind in ("echo", "echo_then_close"):
        for op, payload in expect[1]:
            f = peer.frame()
            got.append(f)
            if f is None or f[0] != op or f[2] != payload:
                check(False, f"{name}: expected {op}/{payload[:20]!r}, got {f and (f[0], f[2][:20])}")
                return False
        if kind == "echo_then_close":
            f = peer.frame()
            ok = f is not None and f[0] == 8 and close_code(f[2]) == expect[2]
            check(ok, name)
            return False  # the connection is over
        check(True, name)
        return True
    f = peer.frame()
    while f is not None and f[0] in (9, 10):  # ignore keepalive traffic
        f = peer.frame()
    ok = f is not None and f[0] == 8 and close_code(f[2]) == expect[1]
    check(ok, f"{name}" + ("" if ok else f" (got {f and (f[0], f[2][:8])})"))
    if kind == "close" and ok:
        check(peer.eof(), f"{name}: then the TCP connection is closed")
    return False


# ---- we are the client of `gust serve --echo` -------------------------------

def as_client():
    p = subprocess.Popen([GUST, "serve", "--echo", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = p.stdout.readline().split()[-1]
        host, port = url[len("ws://"):].rstrip("/").rsplit(":", 1)
        for name, frames, expect in CASES:
            s = socket.create_connection((host, int(port)), timeout=5)
            peer = Peer(s)
            key = base64.b64encode(os.urandom(16)).decode()
            peer.send(f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            while b"\r\n\r\n" not in peer.buf and peer.read_more():
                pass
            head, _, peer.buf = peer.buf.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                check(False, f"{name}: handshake ({head[:40]!r})")
                continue
            if run_case(peer, name, frames, expect, True):
                peer.send(frame(0x88, struct.pack("!H", 1000)))
                peer.frame()
            s.close()
    finally:
        p.terminate()
        p.wait(10)


# ---- we are the server for `gust connect --echo` ----------------------------

def as_server():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]
    client_cases = [c for c in CASES if not c[0].startswith(("7.", "2.6"))] + [
        ("5.1 server frame masked", [(0x81, b"masked!")], ("close_masked", 1002)),
    ]
    for name, frames, expect in client_cases:
        proc = subprocess.Popen([GUST, "connect", f"ws://127.0.0.1:{port}/", "--echo"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            conn, _ = lsock.accept()
            peer = Peer(conn)
            while b"\r\n\r\n" not in peer.buf and peer.read_more():
                pass
            head, _, peer.buf = peer.buf.partition(b"\r\n\r\n")
            key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
            peer.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            if expect[0] == "close_masked":
                for b0, payload in frames:
                    peer.send(frame(b0, payload, mask=True))
                f = peer.frame()
                check(f is not None and f[0] == 8 and close_code(f[2]) == 1002, name)
            else:
                # The client masks what it sends: check that too.
                if run_case(peer, name, frames, expect, False):
                    peer.send(frame(0x88, struct.pack("!H", 1000), mask=False))
                    f = peer.frame()
                    check(f is not None and f[0] == 8 and f[3], f"{name}: close echoed, masked")
            conn.close()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("server", "client"):
        print(__doc__)
        sys.exit(2)
    GUST = os.path.abspath(sys.argv[2])
    # "server": test gust serve (we are its client); "client": test gust connect.
    (as_client if sys.argv[1] == "server" else as_server)()
    print(f"autobahn-{sys.argv[1]}: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)
