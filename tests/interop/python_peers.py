#!/usr/bin/env python3
"""Interop with Python `websockets` (Debian python3-websockets), a peer nobody
here wrote:

  client  websockets.connect()  ->  `gust serve --echo`
  server  websockets.serve()    <-  `gust connect --echo`

usage: python_peers.py client|server GUST [--deflate]

Echo of text and binary messages from 0 B to 16 MiB, fragmented messages,
non-ASCII text, ping/pong, the closing handshake; for the client, graceful
shutdown of the server on SIGTERM (close 1001, exit status 0). Prints one line
per check and ends with "N passed, M failed"; exits 77 (skip) without the
module. Every wait is bounded.
"""
import asyncio
import os
import signal
import subprocess
import sys

try:
    import websockets
except ImportError:
    print("SKIP: python3-websockets is not installed")
    sys.exit(77)

MAX = 16 * 1024 * 1024
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, MAX]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def text_payload(n):
    return "".join(chr(ord("a") + (i * 7) % 26) for i in range(min(n, 4096))) * (n // 4096) + \
        "".join(chr(ord("a") + (i * 7) % 26) for i in range(n % 4096)) if n >= 4096 else \
        "".join(chr(ord("a") + (i * 7) % 26) for i in range(n))


def binary_payload(n):
    block = bytes((i * 31) & 0xFF for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


async def exchange(send, recv, label):
    """Sends every payload and checks its echo."""
    for size in SIZES:
        for kind, payload in (("text", text_payload(size)), ("binary", binary_payload(size))):
            await send(payload)
            got = await asyncio.wait_for(recv(), 60)
            check(got == payload, f"{label}: echo {kind} {size} B")
    await send(["frag-1 ", "frag-2 ", "frag-3"])  # one message, three frames
    got = await asyncio.wait_for(recv(), 10)
    check(got == "frag-1 frag-2 frag-3", f"{label}: fragmented text reassembled and echoed")
    await send([b"\x00\x01", b"\x02"])
    got = await asyncio.wait_for(recv(), 10)
    check(got == b"\x00\x01\x02", f"{label}: fragmented binary")
    uni = "héllo ✓ 🌍 — ünïcödé"
    await send(uni)
    got = await asyncio.wait_for(recv(), 10)
    check(got == uni, f"{label}: non-ASCII text")


async def as_client(gust, deflate):
    args = [gust, "serve", "--echo", "--port", "0", "--max-size", "16m"] + (["--deflate"] if deflate else [])
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        check(line.startswith("listening on ws://127.0.0.1:"), f"server says: {line.strip()}")
        url = line.split()[-1]
        async with websockets.connect(url, compression="deflate" if deflate else None,
                                      max_size=MAX, ping_interval=None, open_timeout=10,
                                      close_timeout=10) as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            print(f"negotiated extensions: {ext}")
            if deflate:
                check(ext is not None and "permessage-deflate" in ext, "permessage-deflate negotiated")
            else:
                check(ext is None, "no extension without --deflate")
            await exchange(ws.send, ws.recv, "python client")
            pong = await ws.ping(b"interop")
            await asyncio.wait_for(pong, 5)
            check(True, "ping answered with a pong")
        check(ws.close_code == 1000, f"close handshake completed ({ws.close_code})")
        # Graceful shutdown: an open client sees 1001, the server exits 0.
        async with websockets.connect(url, ping_interval=None, open_timeout=10) as ws2:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws2.recv(), 10)
                check(False, "connection closed on SIGTERM")
            except websockets.ConnectionClosed as e:
                check(e.code == 1001, f"SIGTERM closes open connections with 1001 ({e.code})")
        rc = await asyncio.wait_for(proc.wait(), 10)
        check(rc == 0, f"gust serve exits 0 after SIGTERM ({rc})")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def as_server(gust, deflate):
    done = asyncio.get_running_loop().create_future()

    async def handler(ws, path=None):
        try:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            print(f"negotiated extensions: {ext}")
            if deflate:
                check(ext is not None and "permessage-deflate" in ext, "permessage-deflate negotiated")
            await exchange(ws.send, ws.recv, "python server")
            pong = await ws.ping(b"interop")
            await asyncio.wait_for(pong, 5)
            check(True, "gust connect answers pings")
            await ws.close(1000, "done")
            check(ws.close_code == 1000, "close handshake completed")
        except Exception as e:  # reported, not raised into websockets
            check(False, f"server handler: {e!r}")
        finally:
            if not done.done():
                done.set_result(True)

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=MAX, ping_interval=None,
                                compression="deflate" if deflate else None) as server:
        port = server.sockets[0].getsockname()[1]
        args = [gust, "connect", f"ws://127.0.0.1:{port}/echo?from=python", "--echo",
                "--max-size", "16m"] + (["--deflate"] if deflate else [])
        proc = await asyncio.create_subprocess_exec(*args)
        try:
            await asyncio.wait_for(done, 120)
            rc = await asyncio.wait_for(proc.wait(), 15)
            check(rc == 0, f"gust connect --echo exits 0 when the server closes ({rc})")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("client", "server"):
        print(__doc__)
        return 2
    deflate = "--deflate" in sys.argv[3:]
    role, gust = sys.argv[1], os.path.abspath(sys.argv[2])
    asyncio.run(asyncio.wait_for((as_client if role == "client" else as_server)(gust, deflate), 300))
    print(f"python-{role}{' (deflate)' if deflate else ''}: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
