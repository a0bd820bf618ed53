#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/.

The seeds are the kinds of inputs the test suite feeds the engine: the RFC
6455 examples (section 5.7, the handshake of section 1.3), Autobahn-style
frame sequences (cases 1-7, 9, 10: payload lengths at the encoding
boundaries, pings, reserved bits and opcodes, fragmentation, UTF-8 edge
cases, close codes), and the handshakes of tests/test_http1.cpp and
tests/test_handshake.cpp, good and bad. Each is wrapped in the input layout
its target documents at the top of its source file.

    python3 fuzz/make_corpus.py          # rewrites fuzz/corpus/

Deterministic: running it again gives the same files. Names say what each
seed is, so a failing replay names a case a person can read.
"""
import os
import shutil
import struct
import zlib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7

FIN, CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x80, 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

seeds = {}


def add(target, name, data):
    seeds.setdefault(target, {})
    assert name not in seeds[target], (target, name)
    seeds[target][name] = bytes(data)


# ---------------------------------------------------------------------------
# Frames

def frame(b0, payload, masked, key=MASK, length=None):
    n = len(payload) if length is None else length
    m = 0x80 if masked else 0
    out = bytearray([b0])
    if n < 126:
        out.append(m | n)
    elif n <= 0xFFFF:
        out.append(m | 126)
        out += struct.pack(">H", n)
    else:
        out.append(m | 127)
        out += struct.pack(">Q", n)
    if masked:
        out += key
        out += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def deflate_raw(data, wbits=15):
    """RFC 7692 7.2.1: raw deflate, sync flush, the 00 00 ff ff removed."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


BOMB = deflate_raw(b"\x00" * 200000)  # about 200 bytes that inflate to 200 kB


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def utf8(cp):
    return chr(cp).encode("utf-8", "surrogatepass")


# Frame sequences as the peer sends them; `m` says whether to mask (the
# peer of a server masks, the peer of a client does not).
def frame_cases(m):
    f = lambda b0, p=b"", **kw: frame(b0, p, m, **kw)
    hello = b"Hello"
    kosme = "κόσμε".encode()
    c = {}
    # RFC 6455 5.7
    c["rfc-5.7-hello"] = f(FIN | TEXT, hello)
    c["rfc-5.7-fragmented-hello"] = f(TEXT, b"Hel") + f(FIN | CONT, b"lo")
    c["rfc-5.7-ping-hello"] = f(FIN | PING, hello)
    c["rfc-5.7-pong-hello"] = f(FIN | PONG, hello)
    c["rfc-5.7-binary-256"] = f(FIN | BINARY, bytes(range(256)))
    c["rfc-5.7-binary-64k-announced"] = f(FIN | BINARY, bytes(200), length=65536)[: 200 + 14]
    # Autobahn 1.x: lengths at the encoding boundaries
    for n in (0, 125, 126, 127, 128, 1000):
        c[f"ab1-text-{n}"] = f(FIN | TEXT, b"*" * n)
    c["ab1-binary-65535-announced"] = f(FIN | BINARY, b"\xfe" * 100, length=65535)[: 100 + 8]
    # 2.x pings and pongs
    c["ab2-ping-empty"] = f(FIN | PING)
    c["ab2-ping-125"] = f(FIN | PING, b"\xfe" * 125)
    c["ab2-ping-126"] = f(FIN | PING, b"\xfe" * 126)
    c["ab2-unsolicited-pong-then-ping"] = f(FIN | PONG, b"unsolicited") + f(FIN | PING, b"ping")
    c["ab2-ten-pings"] = b"".join(f(FIN | PING, b"p%d" % i) for i in range(10))
    c["ab2-fragmented-ping"] = f(PING, b"ping")
    # 3.x reserved bits, 4.x reserved opcodes
    c["ab3-rsv1-text"] = f(FIN | 0x40 | TEXT, hello)
    c["ab3-rsv3-after-text"] = f(FIN | TEXT, hello) + f(FIN | 0x70 | TEXT, hello) + f(FIN | PING)
    c["ab4-opcode-3"] = f(FIN | 0x3)
    c["ab4-opcode-b-after-text"] = f(FIN | TEXT, hello) + f(FIN | 0xB, hello)
    # 5.x fragmentation
    c["ab5-pings-between-fragments"] = (f(TEXT, b"frag1") + f(FIN | PING, b"p") +
                                       f(CONT, b"frag2") + f(FIN | PONG, b"q") + f(FIN | CONT, b"frag3"))
    c["ab5-continuation-first"] = f(FIN | CONT, b"x")
    c["ab5-text-inside-message"] = f(TEXT, b"a") + f(FIN | TEXT, b"b")
    c["ab5-empty-fragments"] = f(TEXT) + f(CONT) + f(CONT) + f(FIN | CONT)
    c["ab5-binary-many-fragments"] = b"".join(f(BINARY if i == 0 else CONT, bytes([i])) for i in range(20)) + f(FIN | CONT)
    # 6.x UTF-8
    c["ab6-kosme"] = f(FIN | TEXT, kosme)
    c["ab6-kosme-split-in-code-points"] = f(TEXT, kosme[:1]) + f(CONT, kosme[1:4]) + f(FIN | CONT, kosme[4:])
    c["ab6-surrogate"] = f(FIN | TEXT, kosme + b"\xed\xa0\x80edited")
    c["ab6-above-10ffff"] = f(FIN | TEXT, b"\xf4\x90\x80\x80")
    c["ab6-overlong-slash"] = f(FIN | TEXT, b"\xc0\xaf")
    c["ab6-truncated-at-end"] = f(FIN | TEXT, b"abc\xe2\x82")
    c["ab6-invalid-fragment-then-rest"] = f(TEXT, kosme) + f(CONT, b"\xf4\x90") + f(FIN | CONT, b"\x80\x80")
    c["ab6-boundaries"] = f(FIN | TEXT, b"".join(utf8(cp) for cp in (0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0x10000, 0x10FFFF)))
    # 7.x close
    c["ab7-close-1000"] = f(FIN | CLOSE, close_payload(1000, b"bye"))
    c["ab7-close-empty"] = f(FIN | CLOSE)
    c["ab7-close-one-byte"] = f(FIN | CLOSE, b"\x03")
    c["ab7-text-after-close"] = f(FIN | CLOSE, close_payload(1000)) + f(FIN | TEXT, hello)
    for code in (0, 999, 1004, 1005, 1006, 1016, 2999, 3000, 4999, 5000, 65535):
        c[f"ab7-close-{code}"] = f(FIN | CLOSE, close_payload(code))
    c["ab7-close-reason-invalid-utf8"] = f(FIN | CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"))
    c["ab7-close-reason-123"] = f(FIN | CLOSE, close_payload(1000, b"*" * 123))
    # 9.x, scaled: one larger message whole and fragmented
    c["ab9-text-3000"] = f(FIN | TEXT, b"abcdefghij" * 300)
    c["ab9-binary-fragments-of-500"] = f(BINARY, b"\x01" * 500) + f(CONT, b"\x02" * 500) + f(FIN | CONT, b"\x03" * 500)
    # header-level oddities
    c["length-126-not-minimal"] = bytes([FIN | TEXT, (0x80 if m else 0) | 126, 0, 5]) + (MASK if m else b"") + hello
    c["length-127-not-minimal"] = bytes([FIN | TEXT, (0x80 if m else 0) | 127]) + struct.pack(">Q", 5) + (MASK if m else b"") + hello
    c["length-msb-set"] = bytes([FIN | BINARY, (0x80 if m else 0) | 127]) + struct.pack(">Q", 1 << 63) + (MASK if m else b"")
    c["length-2^63-1"] = bytes([FIN | BINARY, (0x80 if m else 0) | 127]) + struct.pack(">Q", (1 << 63) - 1) + (MASK if m else b"")
    c["wrong-masking"] = frame(FIN | TEXT, hello, not m)
    return c


def frames_input(wire, flags=0, limits=(0, 0, 0, 0), plan=b""):
    msg, fr, frags = limits[0], limits[1], limits[2]
    return bytes([flags, msg >> 8, msg & 0xFF, fr, frags, len(plan)]) + plan + wire


for target, masked in (("frames_server", True), ("frames_client", False)):
    for name, wire in frame_cases(masked).items():
        add(target, name, frames_input(wire))
    cases = frame_cases(masked)
    # The same inputs fed and configured differently.
    add(target, "byte-by-byte-fragmented-pings", frames_input(cases["ab5-pings-between-fragments"], flags=0x40, plan=b"\x41"))
    add(target, "partial-delivery-utf8-split", frames_input(cases["ab6-kosme-split-in-code-points"], flags=0x01, plan=b"\x42\x43"))
    add(target, "prepare-commit-chunks", frames_input(cases["ab9-binary-fragments-of-500"], flags=0x08, plan=b"\x7f\x45"))
    add(target, "eof-mid-frame", frames_input(cases["ab9-text-3000"][:700], flags=0x10))
    add(target, "no-auto-pong", frames_input(cases["ab2-ten-pings"], flags=0x02, plan=b"\x85"))
    add(target, "ping-flood-consume-half", frames_input(cases["ab2-ten-pings"], plan=b"\x83\x84"))
    add(target, "tight-message-limit", frames_input(cases["ab9-binary-fragments-of-500"], flags=0x20, limits=(1000, 0, 255, 0)))
    add(target, "tight-frame-limit", frames_input(cases["ab9-text-3000"], flags=0x20, limits=(4000, 100, 255, 0)))
    add(target, "tight-fragment-limit", frames_input(cases["ab5-binary-many-fragments"], flags=0x20, limits=(60000, 0, 9, 0)))
    add(target, "deflate-offered-rsv1", frames_input(cases["ab3-rsv1-text"], flags=0x04))
    add(target, "partial-eof", frames_input(cases["ab5-pings-between-fragments"][:20], flags=0x11, plan=b"\x47"))
    f = lambda b0, p=b"": frame(b0, p, masked)
    hello = deflate_raw(b"Hello")
    add(target, "deflate-hello", frames_input(f(FIN | 0x40 | TEXT, hello), flags=0x04))
    add(target, "deflate-hello-twice-no-takeover", frames_input(f(FIN | 0x40 | TEXT, hello) + f(FIN | 0x40 | TEXT, hello), flags=0x84, plan=b"\x43"))
    add(target, "deflate-fragmented", frames_input(f(0x40 | TEXT, hello[:3]) + f(FIN | PING, b"p") + f(FIN | CONT, hello[3:]), flags=0x05))
    add(target, "deflate-uncompressed-between", frames_input(f(FIN | TEXT, b"plain") + f(FIN | 0x40 | BINARY, deflate_raw(bytes(100))), flags=0x04))
    add(target, "deflate-bomb", frames_input(f(FIN | 0x40 | BINARY, BOMB), flags=0x24, limits=(60000, 0, 255, 0)))
    add(target, "deflate-bomb-partial", frames_input(f(FIN | 0x40 | BINARY, BOMB), flags=0x25, limits=(65535, 0, 255, 0), plan=b"\x50"))
    add(target, "deflate-garbage", frames_input(f(FIN | 0x40 | TEXT, b"\xff\xff\xff\xff"), flags=0x04))
    add(target, "deflate-final-block", frames_input(f(FIN | 0x40 | TEXT, bytes([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00])) + f(FIN | 0x40 | TEXT, hello), flags=0x04))
    add(target, "deflate-rsv1-control", frames_input(f(FIN | 0x40 | PING, b"x"), flags=0x04))
    add(target, "deflate-rsv2", frames_input(f(FIN | 0x20 | TEXT, b"x"), flags=0x04))


# ---------------------------------------------------------------------------
# HTTP requests (server side)

def request(extra=b"", method=b"GET", target=b"/chat", version=b"HTTP/1.1", key=KEY, host=b"server.example.com"):
    r = method + b" " + target + b" " + version + b"\r\n"
    if host is not None:
        r += b"Host: " + host + b"\r\n"
    r += b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    if key is not None:
        r += b"Sec-WebSocket-Key: " + key + b"\r\n"
    r += b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    return r


requests = {
    "rfc-1.3": request(b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"),
    "minimal": request(),
    "firefox-keep-alive-upgrade": request().replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"),
    "deflate-offer": request(b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
    "two-protocol-fields": request(b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: , superchat ,\r\n"),
    "protocol-not-token": request(b"Sec-WebSocket-Protocol: chat, \"super chat\"\r\n"),
    "query-target": request(target=b"/socket?room=42&token=abc"),
    "empty-lines-first": b"\r\n\r\n" + request(),
    "followed-by-frame": request() + frame(FIN | TEXT, b"Hello", True),
    "bare-lf": request().replace(b"\r\n", b"\n", 1),
    "bare-lf-everywhere": request().replace(b"\r\n", b"\n"),
    "bare-cr": request().replace(b"\r\nHost", b"\rHost"),
    "obs-fold": request(b"X-Long: a\r\n  continued\r\n"),
    "space-before-colon": request(b"X-Bad : 1\r\n"),
    "nul-in-value": request(b"X-Nul: a\x00b\r\n"),
    "nul-in-target": request(target=b"/a\x00b"),
    "http-1.0": request(version=b"HTTP/1.0"),
    "http-2.0": request(version=b"HTTP/2.0"),
    "lowercase-version": request(version=b"http/1.1"),
    "absolute-form": request(target=b"http://x/chat"),
    "asterisk": request(target=b"*"),
    "two-spaces": request(method=b"GET "),
    "post": request(method=b"POST"),
    "no-host": request(host=None),
    "two-hosts": request(b"Host: other\r\n"),
    "bad-host": request(host=b"a/b@c"),
    "no-key": request(key=None),
    "two-keys": request(b"Sec-WebSocket-Key: " + KEY + b"\r\n"),
    "key-15-bytes": request(key=b"AAAAAAAAAAAAAAAAAAAA"),
    "key-not-canonical": request(key=b"dGhlIHNhbXBsZSBub25jZR=="),
    "version-12": request().replace(b"Version: 13", b"Version: 12"),
    "two-versions": request(b"Sec-WebSocket-Version: 8\r\n"),
    "content-length": request(b"Content-Length: 5\r\n"),
    "content-length-0": request(b"Content-Length: 0\r\n"),
    "chunked": request(b"Transfer-Encoding: chunked\r\n"),
    "origin-other": request(b"Origin: https://evil.example\r\n"),
    "two-origins": request(b"Origin: https://example.com\r\nOrigin: https://example.com\r\n"),
    "many-headers": request(b"".join(b"X-H%d: v\r\n" % i for i in range(40))),
    "long-header": request(b"X-Long: " + b"a" * 3000 + b"\r\n"),
    "unterminated": request()[:-2],
    "connection-quoted": request().replace(b"Connection: Upgrade", b"Connection: \"a,b\", Upgrade"),
    "upgrade-list": request().replace(b"Upgrade: websocket", b"Upgrade: h2c, WebSocket"),
}


def http_input(data, flags=0, limits=(0, 0, 0, 0), plan=b""):
    return bytes([flags, *limits, len(plan)]) + plan + data


for name, r in requests.items():
    add("http_request", name, http_input(r))
add("http_request", "rfc-1.3-byte-by-byte", http_input(requests["rfc-1.3"], plan=b"\x01"))
add("http_request", "rfc-1.3-chunks-of-7-and-3", http_input(requests["rfc-1.3"], plan=b"\x07\x03"))
add("http_request", "tight-limits-many-headers", http_input(requests["many-headers"], flags=0x01, limits=(40, 20, 10, 16)))
add("http_request", "tight-limits-long-line", http_input(requests["long-header"], flags=0x01, limits=(255, 64, 255, 63)))
add("http_request", "origin-policy", http_input(requests["rfc-1.3"], flags=0x06))
add("http_request", "select-callback", http_input(requests["rfc-1.3"], flags=0x12))
add("http_request", "deflate-offer-split", http_input(requests["deflate-offer"], flags=0x02, plan=b"\x05\x0b\x11"))


# ---------------------------------------------------------------------------
# HTTP responses (client side)

def response_101(extra=b"", accept=ACCEPT):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n")


responses = {
    "rfc-1.3": response_101(b"Sec-WebSocket-Protocol: chat\r\n"),
    "minimal": response_101(),
    "deflate": response_101(b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"),
    "unknown-extension": response_101(b"Sec-WebSocket-Extensions: x-unknown\r\n"),
    "quoted-extension-params": response_101(b"Sec-WebSocket-Extensions: foo; bar=\"a,b\"\r\n"),
    "two-protocols": response_101(b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n"),
    "protocol-list": response_101(b"Sec-WebSocket-Protocol: chat, superchat\r\n"),
    "wrong-accept": response_101(accept=b"dGhlIHNhbXBsZSBub25jZQ=="),
    "two-accepts": response_101(b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n"),
    "upgrade-h2c": response_101().replace(b"Upgrade: websocket", b"Upgrade: websocket, h2c"),
    "no-connection": response_101().replace(b"Connection: Upgrade\r\n", b""),
    "continue-then-101": b"HTTP/1.1 100 Continue\r\n\r\n" + response_101(),
    "101-then-frames": response_101() + frame(FIN | TEXT, b"Hello", False),
    "404-with-length": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
    "400-until-eof": b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\nno websocket here",
    "403-http-1.0": b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    "101-http-1.0": b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
    "204": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    "304": b"HTTP/1.1 304 Not Modified\r\n\r\n",
    "chunked": b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "length-list-equal": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
    "length-list-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
    "length-empty-element": b"HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\nabc",
    "length-huge": b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n",
    "length-overflow": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "status-999": b"HTTP/1.1 999 Nine\r\n\r\n",
    "status-no-reason": b"HTTP/1.1 101\r\n\r\n",
    "status-no-space": b"HTTP/1.1 101Switching\r\n\r\n",
    "bare-lf": b"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
    "obs-fold": response_101(b"X-A: b\r\n c\r\n"),
    "long-body": b"HTTP/1.1 403 Forbidden\r\n\r\n" + b"x" * 3000,
    "unterminated": response_101()[:-2],
}

for name, r in responses.items():
    add("http_response", name, bytes([0x04, 0, 0, 0, 0, 0, 0]) + r)
add("http_response", "rfc-1.3-byte-by-byte", bytes([0x04, 0, 0, 0, 0, 0, 1, 1]) + responses["rfc-1.3"])
add("http_response", "deflate-offered", bytes([0x08, 0, 0, 0, 0, 0, 0]) + responses["deflate"])
add("http_response", "quoted-offer", bytes([0x10, 0, 0, 0, 0, 0, 0]) + responses["quoted-extension-params"])
add("http_response", "eof-body", bytes([0x02, 0, 0, 0, 0, 0, 2, 3, 9]) + responses["400-until-eof"])
add("http_response", "eof-in-head", bytes([0x02, 0, 0, 0, 0, 0, 0]) + responses["unterminated"])
add("http_response", "tight-body-limit", bytes([0x03, 255, 255, 255, 63, 10, 0]) + responses["long-body"])
add("http_response", "tight-head-limit", bytes([0x05, 10, 10, 10, 3, 10, 0]) + responses["rfc-1.3"])


# ---------------------------------------------------------------------------
# Handshake header values

NAMES = ["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Upgrade", "Connection",
         "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "Host",
         "Content-Length", "Transfer-Encoding", "Sec-WebSocket-Accept", "sec-websocket-protocol",
         "UPGRADE", "X-Other"]


def fields(*pairs):
    out = bytearray()
    for name, value in pairs:
        out += bytes([NAMES.index(name), len(value)]) + value
    return bytes(out)


ALL = 0x1F
GOOD = 0x80 | 0x40  # GET, 101
header_cases = {
    "plain": (GOOD | 0x01, ALL, fields()),
    "protocols": (GOOD | 0x09, ALL, fields(("Sec-WebSocket-Protocol", b"chat, superchat"))),
    "protocols-two-fields": (GOOD | 0x09, ALL, fields(("Sec-WebSocket-Protocol", b"superchat"), ("sec-websocket-protocol", b" , chat"))),
    "protocol-quoted": (GOOD | 0x09, ALL, fields(("Sec-WebSocket-Protocol", b"\"chat, superchat\""))),
    "protocol-open-quote": (GOOD | 0x09, ALL, fields(("Sec-WebSocket-Protocol", b"chat, \"super"))),
    "extensions-deflate": (GOOD | 0x10, ALL, fields(("Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits; server_max_window_bits=10"))),
    "extensions-two": (GOOD | 0x30, ALL, fields(("Sec-WebSocket-Extensions", b"x-webkit-deflate-frame, permessage-deflate"))),
    "extension-quoted-param": (GOOD | 0x10, ALL, fields(("Sec-WebSocket-Extensions", b"permessage-deflate; x=\"a,b\\\"c\""))),
    "extension-unknown": (GOOD | 0x10, ALL, fields(("Sec-WebSocket-Extensions", b"foo"))),
    "connection-keep-alive": (GOOD, ALL & ~0x04, fields(("Connection", b"keep-alive, Upgrade"))),
    "connection-quoted-upgrade": (GOOD, ALL & ~0x04, fields(("Connection", b"\"Upgrade\""))),
    "upgrade-list": (GOOD, ALL & ~0x02, fields(("UPGRADE", b"h2c, websocket"))),
    "upgrade-open-quote": (GOOD, ALL & ~0x02, fields(("Upgrade", b"websocket, \"h2c"))),
    "key-duplicate": (GOOD, ALL, fields(("Sec-WebSocket-Key", KEY))),
    "key-not-canonical": (GOOD, ALL & ~0x08, fields(("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZR=="), ("Sec-WebSocket-Accept", ACCEPT))),
    "version-list": (GOOD, ALL & ~0x10, fields(("Sec-WebSocket-Version", b"13, 8"))),
    "origin-allowed": (GOOD | 0x02, ALL, fields(("Origin", b"HTTPS://EXAMPLE.COM"))),
    "origin-missing-required": (GOOD | 0x06, ALL, fields()),
    "host-with-port": (GOOD, ALL & ~0x01, fields(("Host", b"[::1]:8080"))),
    "host-bad": (GOOD, ALL & ~0x01, fields(("Host", b"a b"))),
    "body-fields": (GOOD, ALL, fields(("Content-Length", b"0"), ("Transfer-Encoding", b"chunked"))),
    "accept-two": (GOOD, ALL, fields(("Sec-WebSocket-Accept", ACCEPT))),
    "status-200": (0x80, ALL, fields()),
    "post": (0x40, ALL, fields()),
    "nothing": (0, 0, b""),
}
for name, (flags, canned, rest) in header_cases.items():
    add("handshake_headers", name, bytes([flags, canned, 100]) + rest)


# ---------------------------------------------------------------------------
# UTF-8

texts = {
    "ascii": b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
    "kosme": "κόσμε".encode(),
    "boundaries": b"".join(utf8(cp) for cp in (0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF)),
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "above-max": b"\xf4\x90\x80\x80",
    "f5": b"\xf5\x80\x80\x80",
    "overlong-2": b"\xc0\xaf",
    "overlong-3": b"\xe0\x80\xaf",
    "overlong-4": b"\xf0\x80\x80\xaf",
    "lone-continuation": b"\x80\xbf",
    "truncated-4": b"\xf0\x9d\x84",
    "fffe": b"\xef\xbf\xbe",
    "ascii-64-bad-at-63": b"a" * 63 + b"\xff",
    "ascii-64-bad-at-32": b"a" * 32 + b"\xff" + b"a" * 31,
    "mixed-long": ("abc" * 20 + "κόσμε" + "𝄞" * 10 + "xyz" * 30).encode(),
    "mixed-long-bad-tail": ("abc" * 40 + "𝄞").encode() + b"\xed\xa0\x80",
}
for name, t in texts.items():
    add("utf8", name, bytes([0, 0x37, 0xFA, 0x21, 0x3D, 0]) + t)
add("utf8", "kosme-phase-3-unaligned-split", bytes([3 | (5 << 2), 1, 2, 3, 4, 3, 1, 2, 5]) + texts["kosme"])
add("utf8", "mixed-long-chunks-of-17", bytes([1 | (7 << 2), 0xAA, 0x55, 0, 0xFF, 1, 17]) + texts["mixed-long"])
add("utf8", "ascii-64-byte-by-byte", bytes([2, 9, 8, 7, 6, 1, 1]) + texts["ascii-64-bad-at-63"])


# ---------------------------------------------------------------------------
# Whole connection programs

def conn_header(flags=0, limits=None, msfs=0, timeouts=0, seed=0, deflate=0):
    msg, fr, frags, buf = limits or (0, 0, 0, 0)
    return bytes([flags | (0x10 if limits else 0), msg >> 8, msg & 0xFF, fr, frags, buf, msfs, timeouts, seed, deflate])




class Ops:
    def __init__(self):
        self.b = bytearray()

    def raw(self, data):
        for i in range(0, len(data), 255):
            piece = data[i:i + 255]
            self.b += bytes([0x00, len(piece)]) + piece
        return self

    def frame(self, b0, payload=b"", wrong_mask=False, big=0):
        f = (1 if wrong_mask else 0) | ((2 | (big << 2)) if big else 0)
        self.b += bytes([0x01, b0, f, len(payload)]) + payload
        return self

    def handshake(self, v=0):
        self.b += bytes([0x02, v]); return self

    def deliver(self, n=0, pull=True, prepare=False):
        self.b += bytes([0x03 | ((2 if pull else 0) | (1 if prepare else 0)) << 4, n]); return self

    def pull(self, n=0):
        self.b += bytes([0x04 | n << 4]); return self

    def accept(self, v=0):
        self.b += bytes([0x05, v]); return self

    def reject(self, v=0, respond=False):
        self.b += bytes([0x06 | (0x10 if respond else 0), v]); return self

    def send(self, payload, text=True, shared=False, generic=False, repeat=0):
        v = (1 if text else 0) | (2 if shared else 0) | (4 if generic else 0) | (repeat << 4)
        self.b += bytes([0x07, v, len(payload)]) + payload; return self

    def fragment(self, payload, text=True, fin=False):
        self.b += bytes([0x08, (1 if text else 0) | (2 if fin else 0), len(payload)]) + payload; return self

    def ping(self, payload=b""):
        self.b += bytes([0x09, len(payload)]) + payload; return self

    def pong(self, payload=b""):
        self.b += bytes([0x0A, len(payload)]) + payload; return self

    def close(self, code=1000, reason=b""):
        self.b += bytes([0x0B | 0x80]) + struct.pack(">H", code) + bytes([len(reason)]) + reason; return self

    def fail(self, code=1011, reason=b""):
        self.b += bytes([0x0C]) + struct.pack(">H", code) + bytes([len(reason)]) + reason; return self

    def time(self, step, on_timeout=True, only_if_due=False):
        self.b += bytes([0x0D, step | (16 if on_timeout else 0) | (32 if only_if_due else 0)]); return self

    def consume(self, v=0, past_end=False):
        self.b += bytes([0x0E | (0x10 if past_end else 0), v]); return self

    def eof(self, pull=True):
        self.b += bytes([0x0F | (0x10 if pull else 0)]); return self


TO_DEADLINE = 14


def server(flags=0, **kw):
    return conn_header(flags, **kw)


def client(flags=0, **kw):
    return conn_header(flags | 0x01, **kw)


S = lambda: Ops().handshake().deliver().accept().pull()  # an open server
C = lambda: Ops().handshake().deliver()  # an open client
T = 0x55  # timeouts: 100 ms open, close, ping interval; none for the pong

conn = {
    "server-echo-and-close": (server(), S().frame(FIN | TEXT, b"Hello").deliver().send(b"Hello").consume()
                              .close(1000, b"bye").consume().frame(FIN | CLOSE, close_payload(1000)).deliver().eof()),
    "server-rfc-handshake-subprotocol": (server(0x40), Ops().handshake(0x05).deliver(7).deliver(30).deliver().accept(1).pull().consume()),
    "server-deflate-offer": (server(0x08), Ops().handshake(0x02).deliver().accept().pull().consume()
                             .frame(FIN | 0x40 | TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00").deliver().consume()),
    "server-deflate-params": (server(0x08), Ops().handshake(0x20).deliver().accept().pull().consume()),
    "server-reject": (server(), Ops().handshake().deliver().reject(3).consume()),
    "server-respond": (server(), Ops().handshake().deliver().reject(4, respond=True).consume()),
    "server-version-12": (server(), Ops().handshake(0x08).deliver().consume()),
    "server-no-key": (server(), Ops().handshake(0x10).deliver().consume()),
    "server-request-body": (server(), Ops().handshake(0x40).deliver().consume()),
    "server-garbage": (server(), Ops().raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").deliver().consume()),
    "server-open-timeout": (server(timeouts=T), Ops().raw(b"GET /chat HTTP/1.1\r\n").deliver().time(TO_DEADLINE).pull().consume()),
    "server-pending-request-timeout": (server(timeouts=T), Ops().handshake().deliver().time(TO_DEADLINE).pull().accept().consume()),
    "server-ping-flood": (server(), S().frame(FIN | PING, b"1").frame(FIN | PING, b"2").frame(FIN | PING, b"3")
                          .deliver().consume(1).frame(FIN | PING, b"4").frame(FIN | PING, b"5").deliver().consume()),
    "server-fragments-and-pings": (server(0x02), S().frame(TEXT, b"frag1").frame(FIN | PING, b"p").frame(CONT, b"frag2")
                                   .deliver(9).deliver(4).deliver().frame(FIN | CONT, b"end").deliver().consume()),
    "server-send-fragments": (server(), S().fragment(b"one ").ping(b"between").fragment(b"two ").fragment(b"three", fin=True)
                              .consume(2).send(b"\x00\x01\x02", text=False, shared=True).consume()),
    "server-send-invalid-utf8": (server(), S().send(b"\xed\xa0\x80").fragment(b"\xce").fragment(b"\xba", fin=True).consume()),
    "server-fragment-type-mismatch": (server(), S().fragment(b"a").fragment(b"b", text=False, fin=True).send(b"x").consume()),
    "server-backpressure": (server(0x20, limits=(60000, 0, 255, 1), msfs=99), S().send(b"x" * 200, repeat=2).send(b"y").consume(4).send(b"z").consume()),
    "server-big-frame": (server(), S().frame(FIN | BINARY, b"0123456789abcdef", big=15).deliver().consume()),
    "server-message-too-big": (server(limits=(100, 0, 255, 255)), S().frame(FIN | BINARY, b"x" * 101).deliver().consume()),
    "server-too-many-fragments": (server(limits=(60000, 0, 2, 255)), S().frame(BINARY, b"a").frame(CONT).frame(CONT).frame(FIN | CONT).deliver().consume()),
    "server-unmasked-frame": (server(), S().frame(FIN | TEXT, b"Hello", wrong_mask=True).deliver().consume()),
    "server-close-then-timeout": (server(timeouts=T), S().close(1001).time(TO_DEADLINE).pull().consume()),
    "server-keepalive-timeout": (server(timeouts=0xF5), S().time(TO_DEADLINE).consume().time(TO_DEADLINE).pull().consume()),
    "server-keepalive-answered": (server(timeouts=0xF5), S().time(TO_DEADLINE).consume().frame(FIN | PONG, b"\x00\x00\x00\x01")
                                  .deliver().time(TO_DEADLINE).consume()),
    "server-fail": (server(), S().send(b"pending").fail(4000, b"going").pull().consume()),
    "server-fail-connecting": (server(), Ops().handshake().deliver().fail().consume()),
    "server-eof-mid-frame": (server(), S().raw(frame(FIN | TEXT, b"Hello", True)[:4]).deliver().eof().consume()),
    "server-prepare-commit": (server(0x02), Ops().handshake().deliver(50, prepare=True).deliver(0, prepare=True).accept().pull()
                              .frame(FIN | BINARY, b"\x00" * 50).deliver(3, prepare=True).deliver(0, prepare=True).consume()),
    "server-close-codes": (server(), S().close(1005, b"no").close(1006).close(999).close(3000, b"\xff").close(4999, b"ok").consume()
                           .frame(FIN | CLOSE, close_payload(4999, b"ok")).deliver().consume()),
    "server-consume-past-end": (server(), S().consume(1, past_end=True).send(b"a").consume(0, past_end=True)),
    "server-ping-too-large": (server(), S().ping(b"p" * 126).pong(b"q" * 125).ping(b"r" * 125).consume()),
    "server-no-drain": (server(), Ops().handshake().frame(FIN | TEXT, b"Hello").frame(FIN | TEXT, b"World").deliver(pull=False).deliver(pull=False).accept().pull(1).pull().consume()),
    "client-open-and-echo": (client(), C().frame(FIN | TEXT, b"Hello").deliver().send(b"Hello").consume()
                             .close(1000).consume().frame(FIN | CLOSE, close_payload(1000)).deliver().eof()),
    "client-subprotocol": (client(0x40), Ops().handshake(0x01).deliver(11).deliver().consume()),
    "client-subprotocol-not-offered": (client(), Ops().handshake(0x01).deliver().consume()),
    "client-other-subprotocol": (client(0x40), Ops().handshake(0x40).deliver().consume()),
    "client-deflate": (client(0x08), Ops().handshake(0x02).deliver().frame(FIN | 0x40 | TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00").deliver().send(b"a" * 100).consume()),
    "client-deflate-params": (client(0x08), Ops().handshake(0x04).deliver().consume()),
    "client-wrong-accept": (client(), Ops().handshake(0x08).deliver().consume()),
    "client-200": (client(), Ops().handshake(0x10).deliver().eof().consume()),
    "client-100-continue": (client(), Ops().handshake(0x20).deliver(5).deliver().consume()),
    "client-open-timeout": (client(timeouts=T), Ops().time(TO_DEADLINE).pull().consume()),
    "client-masked-frame": (client(), C().frame(FIN | TEXT, b"Hello", wrong_mask=True).deliver().consume()),
    "client-server-closes-first": (client(timeouts=T), C().frame(FIN | CLOSE, close_payload(1001, b"restart")).deliver().consume()
                                   .time(TO_DEADLINE).eof()),
    "client-close-timeout": (client(timeouts=T), C().close(1000).consume().time(TO_DEADLINE).pull()),
    "client-keepalive": (client(timeouts=0xF5), C().time(TO_DEADLINE).consume().time(TO_DEADLINE).pull().consume()),
    "client-partial-messages": (client(0x02), C().frame(BINARY, b"12345").frame(FIN | CONT, b"678").deliver(3).deliver(4).deliver().consume()),
    "client-invalid-utf8": (client(), C().frame(FIN | TEXT, b"\xce\xba\xed\xa0\x80").deliver().consume()),
    "client-fragmented-send-small-frames": (client(0x20, msfs=9), C().send(b"0123456789" * 5).fragment(b"ab" * 20, fin=True).consume()),
    "client-eof-before-response": (client(), Ops().raw(b"HTTP/1.1 101 Switching").deliver().eof().consume()),
    "server-app-ping-rtt": (server(), S().ping(b"rtt?").consume().time(3, on_timeout=False).frame(FIN | PONG, b"rtt?").deliver().consume()),
    "server-continuation-too-big": (server(limits=(300, 0, 255, 255)), S().frame(BINARY, b"a" * 200).frame(FIN | CONT, b"b" * 200).deliver().consume()),
    "server-deflate-bomb": (server(0x08, limits=(60000, 0, 255, 255)), Ops().handshake(0x02).deliver().accept().pull()
                            .raw(frame(FIN | 0x40 | BINARY, BOMB, True)).deliver().consume()),
    "server-deflate-compressed-ping": (server(0x08), Ops().handshake(0x02).deliver().accept().pull().frame(FIN | 0x40 | PING, b"p").deliver().consume()),
    "server-deflate-rsv1-continuation": (server(0x08), Ops().handshake(0x02).deliver().accept().pull()
                                         .frame(0x40 | TEXT, deflate_raw(b"Hel")).frame(0x40 | FIN | CONT, b"lo").deliver().consume()),
    "server-deflate-no-takeover-pool": (server(0x08, deflate=0x07), Ops().handshake(0x22).deliver().accept().pull()
                                        .frame(FIN | 0x40 | TEXT, deflate_raw(b"Hello")).frame(FIN | 0x40 | TEXT, deflate_raw(b"Hello"))
                                        .deliver().send(b"compressed " * 10).send(b"x").consume()),
    "server-deflate-fragmented-send": (server(0x28, msfs=15), Ops().handshake(0x02).deliver().accept().pull()
                                       .fragment(b"a" * 40).fragment(b"b" * 40, fin=True).send(b"c" * 100, shared=True).consume()),
    "client-deflate-small-windows": (client(0x08, deflate=0x2B), Ops().handshake(0x04).deliver()
                                     .frame(FIN | 0x40 | TEXT, deflate_raw(b"windowed", 9)).deliver().send(b"w" * 250).consume()),
    # The peer's bad input after a message the application answers, all in
    # one delivery: the answer must stay queued ahead of the failure's close.
    "server-reply-kept-on-invalid-utf8": (server(), S().frame(FIN | TEXT, b"Hello").frame(FIN | TEXT, b"ok \xff")
                                          .deliver(pull=False).pull(1).send(b"Hello").pull().consume()),
    "server-reply-kept-on-reserved-opcode": (server(), S().frame(FIN | TEXT, b"Hello").frame(FIN | 0x3, b"x")
                                             .deliver(pull=False).pull(1).send(b"Hello").pull().consume()),
    "server-reply-kept-on-corrupt-deflate": (server(0x08), Ops().handshake(0x02).deliver().accept().pull()
                                             .frame(FIN | TEXT, b"Hello").frame(FIN | 0x40 | TEXT, b"\xff\xff")
                                             .deliver(pull=False).pull(1).send(b"Hello").pull().consume()),
    "client-reply-kept-on-too-big": (client(limits=(100, 0, 255, 255)), C().frame(FIN | TEXT, b"Hello").frame(FIN | BINARY, b"x" * 101)
                                     .deliver(pull=False).pull(1).fragment(b"half ").send(b"Hello").pull().consume()),
    "client-deflate-bomb-partial": (client(0x0A, limits=(60000, 0, 255, 255)), Ops().handshake(0x02).deliver()
                                    .raw(frame(FIN | 0x40 | TEXT, BOMB, False)).deliver(40).deliver().consume()),
}
for name, (head, ops) in conn.items():
    add("connection", name, head + bytes(ops.b))
    # The same program with settings.output_pool (flag 0x80): the traffic
    # state borrowed and given back as the connection goes idle.
    add("connection", "pool-" + name, bytes([head[0] | 0x80]) + head[1:] + bytes(ops.b))


# ---------------------------------------------------------------------------
# Client and server wired together

def rt_header(flags=0, c_msfs=0, s_msfs=0, chunk=0, deflate=0x80):
    return bytes([flags, c_msfs, s_msfs, chunk, deflate])


class RT:
    def __init__(self):
        self.b = bytearray()

    def _op(self, op, server, a=0):
        self.b.append(op | (8 if server else 0) | a << 4)

    def send(self, payload, server=False, text=True, shared=False, repeat=0):
        self._op(0, server); self.b += bytes([(1 if text else 0) | (2 if shared else 0) | repeat << 2, len(payload)]) + payload; return self

    def fragment(self, payload, server=False, text=True, fin=False):
        self._op(1, server); self.b += bytes([(1 if text else 0) | (2 if fin else 0), len(payload)]) + payload; return self

    def ping(self, payload, server=False):
        self._op(2, server); self.b += bytes([len(payload)]) + payload; return self

    def pong(self, payload, server=False):
        self._op(3, server); self.b += bytes([len(payload)]) + payload; return self

    def pump(self):
        self._op(4, False); return self

    def transfer(self, server=False, a=0):
        self._op(5, server, a); return self

    def time(self, a):
        self._op(6, False, a); return self

    def pull(self, server=False):
        self._op(7, server); return self


kosme = "κόσμε".encode()
rt = {
    "echo-both-ways": (rt_header(0x20), RT().send(b"Hello").send(b"World", server=True).pump()),
    "binary-and-text": (rt_header(), RT().send(bytes(range(200)), text=False).send(b"text").send(b"\x00" * 3, server=True, text=False, shared=True).pump()),
    "fragments-split-code-point": (rt_header(0x03), RT().fragment(kosme[:3]).fragment(kosme[3:7]).fragment(kosme[7:], fin=True).pump()),
    "fragments-interleaved-pings": (rt_header(), RT().fragment(b"a", text=False).ping(b"p").transfer().fragment(b"b", text=False, fin=True).pong(b"q", server=True).pump()),
    "small-frames": (rt_header(0x18, 4, 6), RT().send(b"0123456789" * 10).send(b"abcdefghij" * 10, server=True).pump()),
    "trickle": (rt_header(0x01, chunk=1), RT().send(b"x" * 100, repeat=3).transfer(a=0).transfer(a=1).pump()),
    "partial-delivery": (rt_header(0x03), RT().send(b"y" * 250, repeat=20).transfer(a=3).pull(server=True).pump()),
    "deflate": (rt_header(0x24), RT().send(b"compress me " * 20).send(b"and me " * 30, server=True).pump()),
    "deflate-small-frames": (rt_header(0x3C, 10, 20), RT().send(b"abc" * 80, repeat=4).fragment(b"x" * 100).fragment(b"y" * 100, fin=True).pump()),
    "keepalive": (rt_header(0x80), RT().time(8).pump().time(8).pump().send(b"still here").pump()),
    "keepalive-missed": (rt_header(0x80), RT().send(b"lost?").time(15).time(15).pump()),
    "server-closes": (rt_header(0x60), RT().send(b"last words", server=True).fragment(b"unfinished").pump()),
    "invalid-utf8-fragment": (rt_header(), RT().fragment(b"\xed").fragment(b"\xa0\x80", fin=True).send(b"ok").pump()),
    "big-ping": (rt_header(), RT().ping(b"z" * 126).ping(b"z" * 125).pump()),
    "deflate-every-message": (rt_header(0x24, deflate=0), RT().send(b"a").send(b"", text=False).send(b"b", server=True).pump()),
    "deflate-no-takeover-pool": (rt_header(0x27, deflate=0x07), RT().send(b"same " * 30).send(b"same " * 30).send(b"back " * 30, server=True).pump()),
    "deflate-small-windows": (rt_header(0x24, deflate=0x2B, chunk=2), RT().send(bytes(range(255)), text=False, repeat=3).send(b"text " * 50, server=True, repeat=1).pump()),
    "deflate-windows-8": (rt_header(0x24, deflate=0x28), RT().send(b"eight " * 40).send(b"bits " * 50, server=True).pump()),
}
for name, (head, ops) in rt.items():
    add("roundtrip", name, head + bytes(ops.b))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    total = 0
    for target, files in sorted(seeds.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += 1
        print(f"{target}: {len(files)} seeds")
    print(f"{total} seeds in {os.path.relpath(CORPUS)}")


if __name__ == "__main__":
    sys.exit(main())
