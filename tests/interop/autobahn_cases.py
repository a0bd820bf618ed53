"""The Autobahn|Testsuite case families as data, for autobahn_sockets.py.

Mirrors tests/test_autobahn.cpp (families 1-7, 9, 10) and the permessage-
deflate cases of tests/test_deflate.cpp (12, 13), case by case where a case
can be played over a socket. Each case is a Case: the frames to send, how to
cut them into TCP writes, what must come back (messages reassembled, pongs),
and how the connection must end:

  end="open"          still open: our close 1000 gets a close 1000 back
  end=("fail", c)     the peer fails with close code c, then closes TCP
  end=("close", c)    the peer echoes our close with code c (None: empty)

A frame sent with keep=n stops after n payload bytes: the peer must fail
without the rest ("fail fast").
"""
import random

FIN, RSV1 = 0x80, 0x40
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class F:
    """One frame to send. keep: payload bytes actually sent (None: all).
    wrong_mask: a server masks / a client does not (RFC 6455 5.1).
    deflate: the payload is a message to compress with the connection's
    context (first frame of a message only; frag cuts it into frames)."""

    def __init__(self, b0, payload=b"", keep=None, wrong_mask=False, deflate=False, frag=None):
        self.b0, self.payload, self.keep = b0, bytes(payload), keep
        self.wrong_mask, self.deflate, self.frag = wrong_mask, deflate, frag


class Case:
    def __init__(self, name, send, expect=(), end="open", chop=None, rtt=False, roles=("server", "client"),
                 known_failure=None, max_frame=None, quiet=False, offer=None, answer=None, gust_closes=None):
        self.name, self.send, self.expect, self.end = name, send, list(expect), end
        # None: one write; "frames": one write per frame; n: writes of n
        # bytes; ("at", i, [offsets]): cut at these payload offsets of frame i.
        self.chop = chop
        self.rtt = rtt  # send frame i only after expect[i] came back
        self.roles = roles
        self.known_failure = known_failure
        self.max_frame = max_frame  # largest payload allowed in an echoed frame
        self.quiet = quiet  # client role: check nothing more comes after the end
        self.offer = offer  # deflate, server role: our Sec-WebSocket-Extensions offer
        self.answer = answer  # deflate, client role: our answer's parameters
        # Client role: gust connect runs without --echo and with its input at
        # EOF, so it sends a close 1000 first; this is what it must print.
        # end="closed": after the expectations, nothing more (no second close).
        self.gust_closes = gust_closes

    @property
    def family(self):
        return self.name.split(".", 1)[0].split(" ", 1)[0]


def msg(op, payload):
    return ("msg", op, bytes(payload))


def pong(payload):
    return ("pong", bytes(payload))


def pongs(payloads):
    """One or more pongs, each for one of the pings in order, the last one
    for the last ping (RFC 6455 5.5.3 lets one pong answer several)."""
    return ("pongs", [bytes(p) for p in payloads])


def X(digits):
    return bytes.fromhex(digits)


def U(cp):
    """UTF-8 form of a code point, surrogates included (to build invalid input)."""
    if cp < 0x80:
        return bytes([cp])
    if cp < 0x800:
        return bytes([0xC0 | cp >> 6, 0x80 | cp & 0x3F])
    if cp < 0x10000:
        return bytes([0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F])
    return bytes([0xF0 | cp >> 18, 0x80 | (cp >> 12) & 0x3F, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F])


KOSME = X("ceba e1bdb9 cf83 cebc ceb5")
HELLO = b"Hello, world!"
_UNIT = ("Hello-\u00b5@\u00df\u00f6\u00e4-UTF-8!! ".encode() + KOSME + b" " + U(0x1D11E) + b" " + U(0xFFFD) + b" ")


def text_payload(n):
    """Exactly n bytes of valid UTF-8 with 1- to 4-byte code points, so
    fragment and write boundaries fall inside code points."""
    s = _UNIT * (n // len(_UNIT))
    return s + bytes(ord("a") + (len(s) + i) % 26 for i in range(n - len(s)))


def binary_payload(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(min(n, 256))) * (n // 256) + \
        bytes((i * 7 + 3) & 0xFF for i in range(n % 256))


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


def scan_utf8(s):
    """(index of the first byte after which s cannot be a prefix of valid
    UTF-8 or None, whether it ends on a code point boundary): an independent
    reference (RFC 3629 / Unicode table 3-7)."""
    need, lo, hi = 0, 0x80, 0xBF
    for i, c in enumerate(s):
        if need == 0:
            lo, hi = 0x80, 0xBF
            if c <= 0x7F:
                continue
            if 0xC2 <= c <= 0xDF:
                need = 1
            elif c == 0xE0:
                need, lo = 2, 0xA0
            elif 0xE1 <= c <= 0xEC or c in (0xEE, 0xEF):
                need = 2
            elif c == 0xED:
                need, hi = 2, 0x9F
            elif c == 0xF0:
                need, lo = 3, 0x90
            elif 0xF1 <= c <= 0xF3:
                need = 3
            elif c == 0xF4:
                need, hi = 3, 0x8F
            else:
                return i, False
        else:
            if not lo <= c <= hi:
                return i, False
            lo, hi, need = 0x80, 0xBF, need - 1
    return None, need == 0


def utf8_ok(s):
    bad, complete = scan_utf8(s)
    return bad is None and complete


def fragments(op, data, size):
    """A message as frames of at most size bytes."""
    if not data:
        return [F(FIN | op, b"")]
    out = []
    for pos in range(0, len(data), size):
        chunk = data[pos:pos + size]
        out.append(F((op if pos == 0 else CONT) | (FIN if pos + size >= len(data) else 0), chunk))
    return out


# ---------------------------------------------------------------------------
# 1 framing

SIZES = (0, 125, 126, 127, 128, 65535, 65536)


def family1():
    cases = []
    for i, n in enumerate(SIZES, 1):
        cases.append(Case(f"1.1.{i} text message of {n} bytes", [F(FIN | TEXT, b"*" * n)], [msg(TEXT, b"*" * n)]))
    p = text_payload(65536)
    cases.append(Case("1.1.8 65536-byte text message in TCP writes of 997 bytes", [F(FIN | TEXT, p)],
                      [msg(TEXT, p)], chop=997))
    for i, n in enumerate(SIZES, 1):
        cases.append(Case(f"1.2.{i} binary message of {n} bytes", [F(FIN | BINARY, b"\xfe" * n)],
                          [msg(BINARY, b"\xfe" * n)]))
    p = binary_payload(65536)
    cases.append(Case("1.2.8 65536-byte binary message in TCP writes of 997 bytes", [F(FIN | BINARY, p)],
                      [msg(BINARY, p)], chop=997))
    send, expect = [], []
    for n in SIZES:
        send += [F(FIN | TEXT, text_payload(n)), F(FIN | BINARY, binary_payload(n))]
        expect += [msg(TEXT, text_payload(n)), msg(BINARY, binary_payload(n))]
    cases.append(Case("1.x messages of every boundary length back to back", send, expect))
    cases.append(Case("1.x the first six of them in one-byte TCP writes",
                      send[:6], expect[:6], chop=1))
    return cases


# ---------------------------------------------------------------------------
# 2 pings and pongs

def family2():
    c = [
        Case("2.1 ping without payload", [F(FIN | PING)], [pong(b"")]),
        Case("2.2 ping with a small text payload", [F(FIN | PING, HELLO)], [pong(HELLO)]),
        Case("2.3 ping with a small binary payload", [F(FIN | PING, X("00fffefdfcfb00ff"))],
             [pong(X("00fffefdfcfb00ff"))]),
        Case("2.4 ping with a 125-byte binary payload", [F(FIN | PING, b"\xfe" * 125)], [pong(b"\xfe" * 125)]),
        Case("2.5 ping with a 126-byte payload fails 1002", [F(FIN | PING, b"\xfe" * 126), F(FIN | TEXT, HELLO)],
             end=("fail", 1002)),
        Case("2.5 fail fast: the 126-byte ping's header alone", [F(FIN | PING, b"\xfe" * 126, keep=0)],
             end=("fail", 1002)),
        Case("2.6 ping with a 125-byte payload in one-byte TCP writes", [F(FIN | PING, binary_payload(125))],
             [pong(binary_payload(125))], chop=1),
        Case("2.7 unsolicited pong without payload, then text", [F(FIN | PONG), F(FIN | TEXT, b"after")],
             [msg(TEXT, b"after")]),
        Case("2.8 unsolicited pong with payload, then text",
             [F(FIN | PONG, b"unsolicited pong payload"), F(FIN | TEXT, b"after")], [msg(TEXT, b"after")]),
        Case("2.9 unsolicited pong, then ping: only the ping is answered",
             [F(FIN | PONG, b"unsolicited pong payload"), F(FIN | PING, b"ping payload")], [pong(b"ping payload")]),
    ]
    pings = [b"payload-%d" % i for i in range(10)]
    c.append(Case("2.10 ten pings", [F(FIN | PING, p) for p in pings], [pongs(pings)]))
    pings = [binary_payload(i * 12 + 5) + bytes([0x30 + i]) for i in range(10)]
    c.append(Case("2.11 ten pings in one-byte TCP writes", [F(FIN | PING, p) for p in pings], [pongs(pings)],
                  chop=1))
    c.append(Case("2.11 variant: ten pings in TCP writes of 13 bytes", [F(FIN | PING, p) for p in pings],
                  [pongs(pings)], chop=13))
    return c


# ---------------------------------------------------------------------------
# 3 reserved bits

def family3():
    h = F(FIN | TEXT, HELLO)
    c = [
        Case("3.1 text with RSV = 1", [F(FIN | 0x10 | TEXT, HELLO)], end=("fail", 1002)),
        Case("3.2 text, text with RSV = 2, ping", [h, F(FIN | 0x20 | TEXT, HELLO), F(FIN | PING, HELLO)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
        Case("3.2 fail fast: text, then the RSV = 2 header alone", [h, F(FIN | 0x20 | TEXT, HELLO, keep=0)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
        Case("3.3 text, text with RSV = 3, ping, frame-wise writes",
             [h, F(FIN | 0x30 | TEXT, HELLO), F(FIN | PING, HELLO)], [msg(TEXT, HELLO)], end=("fail", 1002),
             chop="frames"),
        Case("3.4 text, text with RSV = 4, ping, octet-wise writes",
             [h, F(FIN | 0x40 | TEXT, HELLO), F(FIN | PING, HELLO)], [msg(TEXT, HELLO)], end=("fail", 1002),
             chop=1),
        Case("3.5 binary with RSV = 5", [F(FIN | 0x50 | BINARY, binary_payload(256))], end=("fail", 1002)),
        Case("3.6 ping with RSV = 6", [F(FIN | 0x60 | PING, HELLO)], end=("fail", 1002)),
        Case("3.7 close with RSV = 7", [F(FIN | 0x70 | CLOSE, close_payload(1000))], end=("fail", 1002)),
    ]
    for rsv in range(1, 8):
        bits = rsv << 4
        for op in (TEXT, BINARY, CLOSE, PING, PONG):
            p = close_payload(1000) if op == CLOSE else b"payload"
            c.append(Case(f"3.x RSV {rsv} on opcode {op} after a message", [h, F(FIN | bits | op, p), F(FIN | PING, b"after")],
                          [msg(TEXT, HELLO)], end=("fail", 1002)))
        c.append(Case(f"3.x RSV {rsv} on a first fragment", [h, F(bits | TEXT, b"frag"), F(FIN | CONT, b"ment")],
                      [msg(TEXT, HELLO)], end=("fail", 1002)))
        c.append(Case(f"3.x RSV {rsv} on a continuation", [h, F(TEXT, b"frag"), F(FIN | bits | CONT, b"ment")],
                      [msg(TEXT, HELLO)], end=("fail", 1002)))
    return c


# ---------------------------------------------------------------------------
# 4 opcodes

def family4():
    p = b"reserved opcode payload"
    h = F(FIN | TEXT, HELLO)
    c = [
        Case("4.1.1 non-control opcode 3, empty", [F(FIN | 3)], end=("fail", 1002)),
        Case("4.1.2 non-control opcode 4 with payload", [F(FIN | 4, p)], end=("fail", 1002)),
        Case("4.1.3 text, non-control opcode 5, ping", [h, F(FIN | 5), F(FIN | PING, HELLO)], [msg(TEXT, HELLO)],
             end=("fail", 1002)),
        Case("4.1.4 text, non-control opcode 6 with payload, ping", [h, F(FIN | 6, p), F(FIN | PING, HELLO)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
        Case("4.1.5 text, non-control opcode 7 with payload, ping", [h, F(FIN | 7, p), F(FIN | PING, HELLO)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
        Case("4.2.1 control opcode 11, empty", [F(FIN | 11)], end=("fail", 1002)),
        Case("4.2.2 control opcode 12 with payload", [F(FIN | 12, p)], end=("fail", 1002)),
        Case("4.2.3 text, control opcode 13, ping", [h, F(FIN | 13), F(FIN | PING, HELLO)], [msg(TEXT, HELLO)],
             end=("fail", 1002)),
        Case("4.2.4 text, control opcode 14 with payload, ping", [h, F(FIN | 14, p), F(FIN | PING, HELLO)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
        Case("4.2.5 text, control opcode 15 with payload, ping", [h, F(FIN | 15, p), F(FIN | PING, HELLO)],
             [msg(TEXT, HELLO)], end=("fail", 1002)),
    ]
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        for fin in (FIN, 0):
            f = "FIN" if fin else "no FIN"
            c.append(Case(f"4.x opcode {op} ({f}) between messages", [h, F(fin | op, p), h], [msg(TEXT, HELLO)],
                          end=("fail", 1002)))
            c.append(Case(f"4.x fail fast: opcode {op} ({f}), its header alone", [h, F(fin | op, p, keep=0)],
                          [msg(TEXT, HELLO)], end=("fail", 1002)))
        c.append(Case(f"4.x opcode {op} inside a fragmented message", [F(TEXT, b"frag"), F(FIN | op, p), F(FIN | CONT, b"ment")],
                      end=("fail", 1002)))
    return c


# ---------------------------------------------------------------------------
# 5 fragmentation

def family5():
    a, b = F(TEXT, b"fragment1"), F(FIN | CONT, b"fragment2")
    ab = [msg(TEXT, b"fragment1fragment2")]
    png = F(FIN | PING, b"ping payload")
    five = [F(TEXT, b"fragment1"), F(CONT, b"fragment2"), F(FIN | PING, b"pongme 1!"), F(CONT, b"fragment3"),
            F(CONT, b"fragment4"), F(FIN | PING, b"pongme 2!"), F(FIN | CONT, b"fragment5")]
    five_out = [pongs([b"pongme 1!", b"pongme 2!"]), msg(TEXT, b"fragment1fragment2fragment3fragment4fragment5")]
    c = [
        Case("5.1 ping in 2 fragments", [F(PING, b"fragment1"), F(FIN | CONT, b"fragment2")], end=("fail", 1002)),
        Case("5.2 pong in 2 fragments", [F(PONG, b"fragment1"), F(FIN | CONT, b"fragment2")], end=("fail", 1002)),
        Case("5.3 text in 2 fragments", [a, b], ab),
        Case("5.4 text in 2 fragments, frame-wise writes", [a, b], ab, chop="frames"),
        Case("5.5 text in 2 fragments, octet-wise writes", [a, b], ab, chop=1),
        Case("5.6 text in 2 fragments with a ping between", [a, png, b], [pong(b"ping payload")] + ab),
        Case("5.7 the same, frame-wise writes", [a, png, b], [pong(b"ping payload")] + ab, chop="frames"),
        Case("5.8 the same, octet-wise writes", [a, png, b], [pong(b"ping payload")] + ab, chop=1),
        Case("5.9 continuation (FIN) with no message to continue",
             [F(FIN | CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)], end=("fail", 1002)),
        Case("5.10 the same, frame-wise writes", [F(FIN | CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)],
             end=("fail", 1002), chop="frames"),
        Case("5.11 the same, octet-wise writes", [F(FIN | CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)],
             end=("fail", 1002), chop=1),
        Case("5.9 fail fast: the continuation's header alone", [F(FIN | CONT, b"non-continuation payload", keep=0)],
             end=("fail", 1002)),
        Case("5.12 continuation (no FIN) with no message to continue",
             [F(CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)], end=("fail", 1002)),
        Case("5.13 the same, frame-wise writes", [F(CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)],
             end=("fail", 1002), chop="frames"),
        Case("5.14 the same, octet-wise writes", [F(CONT, b"non-continuation payload"), F(FIN | TEXT, HELLO)],
             end=("fail", 1002), chop=1),
        Case("5.12 fail fast: the continuation's header alone", [F(CONT, b"non-continuation payload", keep=0)],
             end=("fail", 1002)),
        Case("5.15 fragmented text, then a continuation with nothing to continue",
             [a, b, F(CONT, b"fragment3"), F(FIN | TEXT, b"fragment4")], ab, end=("fail", 1002)),
        Case("5.15 fail fast: the stray continuation's header alone", [a, b, F(CONT, b"fragment3", keep=0)], ab,
             end=("fail", 1002)),
        Case("5.16 continuations and text, twice",
             [F(CONT, b"fragment1"), F(FIN | CONT, b"fragment2"), F(FIN | TEXT, b"fragment3")] * 2,
             end=("fail", 1002)),
        Case("5.17 continuations (FIN) and text, twice",
             [F(FIN | CONT, b"fragment1"), F(FIN | CONT, b"fragment2"), F(FIN | TEXT, b"fragment3")] * 2,
             end=("fail", 1002)),
        Case("5.18 text in 2 fragments, both with a text opcode", [a, F(FIN | TEXT, b"fragment2")],
             end=("fail", 1002)),
        Case("5.18 fail fast: the second text header alone", [a, F(FIN | TEXT, b"fragment2", keep=0)],
             end=("fail", 1002)),
        Case("5.18 variant: binary inside a text message", [a, F(FIN | BINARY, b"fragment2")], end=("fail", 1002)),
        Case("5.18 variant: text inside a binary message",
             [F(BINARY, b"fragment1"), F(TEXT, b"fragment2"), F(FIN | CONT, b"x")], end=("fail", 1002)),
        Case("5.19 text in 5 fragments with 2 pings between", five, five_out, chop=("frames_at", [3, 6])),
        Case("5.20 the same, frame-wise writes", five, five_out, chop="frames"),
        Case("5.x a fragmented ping between fragments", [F(TEXT, b"frag"), F(PING, b"x"), F(FIN | CONT, b"ment")],
             end=("fail", 1002)),
        Case("5.x a 126-byte ping between fragments",
             [F(TEXT, b"frag"), F(FIN | PING, b"p" * 126), F(FIN | CONT, b"ment")], end=("fail", 1002)),
        Case("5.x a pong between fragments is not answered",
             [F(BINARY, binary_payload(200)[:150]), F(FIN | PONG, b"pong payload"), F(FIN | CONT, binary_payload(200)[150:])],
             [msg(BINARY, binary_payload(200))]),
        Case("5.x a frame masked the wrong way for its direction (RFC 6455 5.1)",
             [F(FIN | TEXT, b"wrongly masked", wrong_mask=True)], end=("fail", 1002)),
        Case("5.3 variant: binary in 2 fragments",
             [F(BINARY, binary_payload(300)[:100]), F(FIN | CONT, binary_payload(300)[100:])],
             [msg(BINARY, binary_payload(300))]),
        Case("5.3 variant: empty fragments around and between",
             [F(TEXT), F(CONT, b"frag"), F(CONT), F(CONT, b"ment"), F(FIN | CONT), F(BINARY), F(FIN | CONT)],
             [msg(TEXT, b"fragment"), msg(BINARY, b"")]),
    ]
    t, bi = text_payload(500), binary_payload(500)
    for size in (1, 2, 3, 10, 64, 125, 126, 499):
        c.append(Case(f"5.3 variant: 500-byte text and binary in fragments of {size}",
                      fragments(TEXT, t, size) + fragments(BINARY, bi, size), [msg(TEXT, t), msg(BINARY, bi)]))
    return c


# ---------------------------------------------------------------------------
# 6 UTF-8

def _lonely(lo, hi):
    return b"".join(bytes([x, 0x20]) for x in range(lo, hi + 1))


UTF8_VECTORS = [
    ("6.2.1", "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode(), True),
    ("6.2.4", KOSME, True),
    ("6.3.1", KOSME + X("eda080") + b"edited", False),
    ("6.5.1", KOSME, True), ("6.5.2", X("f0908080"), True), ("6.5.3", X("f09d849e") + KOSME, True),
    ("6.5.4", U(0x10FFFF) + b"x" + U(0x10000), True), ("6.5.5", b"\xe2\x82\xac" + U(0x7FF) + U(0x800) + U(0xFFFF), True),
] + [("6.6.%d" % n, KOSME[:n], v)
     for n, v in zip(range(1, 12), (False, True, False, False, True, False, True, False, True, False, True))] + [
    ("6.7.1", b"\x00", True), ("6.7.2", X("c280"), True), ("6.7.3", X("e0a080"), True), ("6.7.4", X("f0908080"), True),
    ("6.8.1", X("f888808080"), False), ("6.8.2", X("fc8480808080"), False),
    ("6.9.1", X("7f"), True), ("6.9.2", X("dfbf"), True), ("6.9.3", X("efbfbf"), True), ("6.9.4", X("f48fbfbf"), True),
    ("6.10.1", X("f7bfbfbf"), False), ("6.10.2", X("fbbfbfbfbf"), False), ("6.10.3", X("fdbfbfbfbfbf"), False),
    ("6.10 U+110000", X("f4908080"), False), ("6.10 F5", X("f5808080"), False),
    ("6.11.1", X("ed9fbf"), True), ("6.11.2", X("ee8080"), True), ("6.11.3", X("efbfbd"), True),
    ("6.11.4", X("f48fbfbf"), True), ("6.11.5", X("f4908080"), False),
    ("6.11 U+0080", U(0x80), True), ("6.11 U+07FF", U(0x7FF), True), ("6.11 U+0800", U(0x800), True),
    ("6.11 U+FFFF", U(0xFFFF), True), ("6.11 U+10000", U(0x10000), True),
    ("6.11 U+FFFF0 in a sentence", b"a" + U(0xFFFF0) + b"b", True),
    ("6.12.1", X("80"), False), ("6.12.2", X("bf"), False), ("6.12.3", X("80bf"), False),
    ("6.12.4", X("80bf80"), False), ("6.12.5", X("80bf80bf"), False), ("6.12.6", X("80bf80bf80"), False),
    ("6.12.7", X("80bf80bf80bf"), False), ("6.12.8", bytes(range(0x80, 0xC0)), False),
    ("6.12 after ASCII", b"abc" + X("80"), False), ("6.12 after a complete code point", KOSME + X("bf"), False),
    ("6.13.1", _lonely(0xC0, 0xDF), False), ("6.13.2", _lonely(0xE0, 0xEF), False),
    ("6.13.3", _lonely(0xF0, 0xF7), False), ("6.13.4", _lonely(0xF8, 0xFB), False),
    ("6.13.5", _lonely(0xFC, 0xFD), False),
    ("6.14.1", X("c0"), False), ("6.14.2", X("e080"), False), ("6.14.3", X("f08080"), False),
    ("6.14.4", X("f8808080"), False), ("6.14.5", X("fc80808080"), False), ("6.14.6", X("df"), False),
    ("6.14.7", X("efbf"), False), ("6.14.8", X("f7bfbf"), False), ("6.14.9", X("fbbfbfbf"), False),
    ("6.14.10", X("fdbfbfbfbf"), False), ("6.14 truncated U+10FFFF", X("f48fbf"), False),
    ("6.14 truncated U+10000", b"abc" + X("f09080"), False),
    ("6.15.1", X("c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf"), False),
    ("6.15 valid truncations in a row", X("dfefbff48fbf"), False),
    ("6.16.1", X("fe"), False), ("6.16.2", X("ff"), False), ("6.16.3", X("fefeffff"), False),
    ("6.17.1", X("c0af"), False), ("6.17.2", X("e080af"), False), ("6.17.3", X("f08080af"), False),
    ("6.17.4", X("f8808080af"), False), ("6.17.5", X("fc80808080af"), False),
    ("6.18.1", X("c1bf"), False), ("6.18.2", X("e09fbf"), False), ("6.18.3", X("f08fbfbf"), False),
    ("6.18.4", X("f887bfbfbf"), False), ("6.18.5", X("fc83bfbfbfbf"), False),
    ("6.19.1", X("c080"), False), ("6.19.2", X("e08080"), False), ("6.19.3", X("f0808080"), False),
    ("6.19.4", X("f880808080"), False), ("6.19.5", X("fc8080808080"), False),
    ("6.20.1", X("eda080"), False), ("6.20.2", X("edadbf"), False), ("6.20.3", X("edae80"), False),
    ("6.20.4", X("edafbf"), False), ("6.20.5", X("edb080"), False), ("6.20.6", X("edbe80"), False),
    ("6.20.7", X("edbfbf"), False),
    ("6.21.1", X("eda080edb080"), False), ("6.21.2", X("eda080edbfbf"), False), ("6.21.3", X("edadbfedb080"), False),
    ("6.21.4", X("edadbfedbfbf"), False), ("6.21.5", X("edae80edb080"), False), ("6.21.6", X("edae80edbfbf"), False),
    ("6.21.7", X("edafbfedb080"), False), ("6.21.8", X("edafbfedbfbf"), False),
] + [("6.22.%d" % (2 * plane + j + 1), U(plane << 16 | low), True)
     for plane in range(17) for j, low in enumerate((0xFFFE, 0xFFFF))] + [
    ("6.22 U+FDD0-U+FDEF", b"".join(U(cp) for cp in range(0xFDD0, 0xFDF0)), True),
    ("6.23.1", X("efbfb9"), True), ("6.23.2", X("efbfba"), True), ("6.23.3", X("efbfbb"), True),
    ("6.23.4", X("efbfbc"), True), ("6.23.5", X("efbfbd"), True), ("6.23.6", X("efbfbdefbfbd"), True),
    ("6.23.7", X("efbbbf") + b"BOM", True),
]


def utf8_cases(vid, v, valid):
    """A valid message comes back as one frame, as two fragments split at
    every byte and one fragment per byte (one connection). An invalid one
    fails 1007 in each of those (a connection each), and fails fast: with the
    bytes up to the offending one and no more, also split into fragments and
    written one byte at a time."""
    assert utf8_ok(v) == valid, vid  # the table agrees with the reference
    splits = [[F(TEXT, v[:k]), F(FIN | CONT, v[k:])] for k in range(len(v) + 1)]
    per_byte = fragments(TEXT, v, 1)
    if valid:
        send = [F(FIN | TEXT, v)] + [f for s in splits for f in s] + per_byte
        return [Case(f"{vid} valid: one frame, 2 fragments split at 0..{len(v)}, one fragment per byte", send,
                     [msg(TEXT, v)] * (len(splits) + 2))]
    fail = ("fail", 1007)
    c = [Case(f"{vid} invalid in one frame", [F(FIN | TEXT, v)], end=fail)]
    c += [Case(f"{vid} invalid in 2 fragments split at {k}", s, end=fail) for k, s in enumerate(splits)]
    c.append(Case(f"{vid} invalid in one fragment per byte", per_byte, end=fail))
    padded = v + b"-edited-and-more"
    k, _ = scan_utf8(padded)
    c.append(Case(f"{vid} fail fast: up to offending byte {k} of a {len(padded)}-byte frame",
                  [F(FIN | TEXT, padded, keep=k + 1)], end=fail))
    c.append(Case(f"{vid} fail fast: the same in one-byte TCP writes", [F(FIN | TEXT, padded, keep=k + 1)],
                  end=fail, chop=1))
    for j in sorted({0, k // 2, k, k + 1}):
        if j > k:
            send = [F(TEXT, padded[:j], keep=k + 1)]
        else:
            send = [F(TEXT, padded[:j]), F(FIN | CONT, padded[j:], keep=k - j + 1)]
        c.append(Case(f"{vid} fail fast: 2 fragments split at {j}, up to offending byte {k}", send, end=fail))
    return c


def family6():
    c = [
        Case("6.1.1 empty text message", [F(FIN | TEXT)], [msg(TEXT, b"")]),
        Case("6.1.2 text message of 3 empty fragments", [F(TEXT), F(CONT), F(FIN | CONT)], [msg(TEXT, b"")]),
        Case("6.1.3 empty, non-empty, empty fragments",
             [F(TEXT), F(CONT, b"middle frame payload"), F(FIN | CONT)], [msg(TEXT, b"middle frame payload")]),
        Case("6.4.1 invalid code point in the 2nd of 3 fragments, frame-wise writes",
             [F(TEXT, KOSME), F(CONT, X("f4908080")), F(FIN | CONT, b"edited")], end=("fail", 1007), chop="frames"),
        Case("6.4.1 fail fast: the 2nd fragment up to its offending byte",
             [F(TEXT, KOSME), F(CONT, X("f4908080"), keep=2)], end=("fail", 1007)),
        Case("6.4.2 the offending byte alone in the 2nd of 3 fragments, frame-wise writes",
             [F(TEXT, KOSME + b"\xf4"), F(CONT, b"\x90"), F(FIN | CONT, X("8080") + b"edited")], end=("fail", 1007),
             chop="frames"),
        Case("6.4.2 fail fast: the first 2 fragments alone", [F(TEXT, KOSME + b"\xf4"), F(CONT, b"\x90")],
             end=("fail", 1007)),
        Case("6.4.3 one frame in 3 writes, the invalid code point in the 2nd",
             [F(FIN | TEXT, KOSME + X("f4908080") + b"edited")], end=("fail", 1007), chop=("at", 0, [11, 15])),
        Case("6.4.3 fail fast: the first 2 writes up to the offending byte",
             [F(FIN | TEXT, KOSME + X("f4908080") + b"edited", keep=13)], end=("fail", 1007), chop=("at", 0, [11])),
        Case("6.4.4 one frame in 3 writes, the 2nd ending right after the offending byte",
             [F(FIN | TEXT, KOSME + X("f4908080") + b"edited")], end=("fail", 1007), chop=("at", 0, [11, 13])),
        Case("6.4 variant: a frame announcing 20 bytes fails at its 3rd payload byte",
             [F(FIN | TEXT, b"ab" + X("c0af") + b"x" * 16, keep=3)], end=("fail", 1007)),
    ]
    for vid, v, valid in UTF8_VECTORS:
        c += utf8_cases(vid, v, valid)
    return c


# ---------------------------------------------------------------------------
# 7 close handling

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]  # 7.7.1-7.7.13
INVALID_CODES = [(f"7.9.{i}", c) for i, c in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999), 1)] + \
    [("7.13.1", 5000), ("7.13.2", 65535), ("7.9 extra", 1015)]


def family7():
    big = text_payload(256 * 1024)
    cp = F(FIN | CLOSE, close_payload(1000))
    c = [
        Case("7.1.1 text, then close", [F(FIN | TEXT, b"Hello World!"), cp], [msg(TEXT, b"Hello World!")],
             end=("close", 1000)),
        Case("7.1.2 close, then close again: one close back", [cp, F(FIN | CLOSE, close_payload(1001))],
             end=("close", 1000), quiet=True),
        Case("7.1.3 close, then ping: not answered", [cp, F(FIN | PING, b"Hello World!")], end=("close", 1000),
             quiet=True),
        Case("7.1.4 close, then text: not echoed", [cp, F(FIN | TEXT, b"Hello World!")], end=("close", 1000),
             quiet=True),
        Case("7.1.5 first fragment, close, last fragment: no message",
             [F(TEXT, b"fragment1"), cp, F(FIN | CONT, b"fragment2")], end=("close", 1000), quiet=True),
        Case("7.1.6 256 KiB text, close, ping in TCP writes of 4096 bytes", [F(FIN | TEXT, big), cp, F(FIN | PING, b"Hello World!")],
             [msg(TEXT, big)], end=("close", 1000), chop=4096, quiet=True),
        Case("7.1.3 counterpart: after gust's close, our text arrives, our ping is answered, no second close",
             [F(FIN | TEXT, b"still here"), F(FIN | PING, b"are you there"), F(FIN | CLOSE, close_payload(1000, b"bye too"))],
             [pong(b"are you there")], end="closed", roles=("client",), gust_closes=b"still here\n"),
        Case("7.3.1 close with an empty payload: echoed empty", [F(FIN | CLOSE)], end=("close", None)),
        Case("7.3.2 close with a 1-byte payload", [F(FIN | CLOSE, b"*")], end=("fail", 1002)),
        Case("7.3.3 close 1000 without reason", [cp], end=("close", 1000)),
        Case("7.3.4 close 1000 with a reason", [F(FIN | CLOSE, close_payload(1000, b"Hello World!"))],
             end=("close", 1000)),
        Case("7.3.5 close 1000 with a 123-byte reason", [F(FIN | CLOSE, close_payload(1000, b"*" * 123))],
             end=("close", 1000)),
        Case("7.3.5 variant: a 123-byte UTF-8 reason", [F(FIN | CLOSE, close_payload(1000, U(0x20AC) * 41))],
             end=("close", 1000)),
        Case("7.3.6 close with a 126-byte payload", [F(FIN | CLOSE, close_payload(1000, b"*" * 124))],
             end=("fail", 1002)),
        Case("7.3.6 fail fast: its header alone", [F(FIN | CLOSE, close_payload(1000, b"*" * 124), keep=0)],
             end=("fail", 1002)),
        Case("7.5.1 close reason not UTF-8", [F(FIN | CLOSE, close_payload(1000, KOSME + X("eda080") + b"edited"))],
             end=("fail", 1007)),
        Case("7.5.1 variant: reason ending inside a code point", [F(FIN | CLOSE, close_payload(1000, b"abc\xce"))],
             end=("fail", 1007)),
        Case("7.5.1 variant: reason with an overlong NUL", [F(FIN | CLOSE, close_payload(1000, X("c080")))],
             end=("fail", 1007)),
    ]
    for i, code in enumerate(VALID_CODES, 1):
        c.append(Case(f"7.7.{i} close code {code}", [F(FIN | CLOSE, close_payload(code))], end=("close", code)))
        c.append(Case(f"7.7.{i} close code {code} with a reason", [F(FIN | CLOSE, close_payload(code, b"reason"))],
                      end=("close", code)))
    for code in (1012, 1013, 1014):
        c.append(Case(f"7.7 extra close code {code}", [F(FIN | CLOSE, close_payload(code))], end=("close", code)))
    for vid, code in INVALID_CODES:
        c.append(Case(f"{vid} invalid close code {code}", [F(FIN | CLOSE, close_payload(code))], end=("fail", 1002)))
        c.append(Case(f"{vid} invalid close code {code} with a reason, after text, before ping",
                      [F(FIN | TEXT, HELLO), F(FIN | CLOSE, close_payload(code, b"reason")), F(FIN | PING, b"x")],
                      [msg(TEXT, HELLO)], end=("fail", 1002)))
    return c


# ---------------------------------------------------------------------------
# 9 limits and performance (with --max-size 16m)

MIB = 1 << 20


def family9():
    c = []
    sizes = (64 * 1024, 256 * 1024, MIB, 4 * MIB, 8 * MIB, 16 * MIB)
    for i, n in enumerate(sizes, 1):
        c.append(Case(f"9.1.{i} text message of {n} bytes", [F(FIN | TEXT, text_payload(n))], [msg(TEXT, text_payload(n))]))
    for i, n in enumerate(sizes, 1):
        c.append(Case(f"9.2.{i} binary message of {n} bytes", [F(FIN | BINARY, binary_payload(n))],
                      [msg(BINARY, binary_payload(n))]))
    frags = (64, 256, 1024, 4096, 16384, 65536, 256 * 1024, MIB, 4 * MIB)
    for i, size in enumerate(frags, 1):
        t = text_payload(4 * MIB)
        c.append(Case(f"9.3.{i} 4 MiB text in fragments of {size}", fragments(TEXT, t, size), [msg(TEXT, t)]))
    for i, size in enumerate(frags, 1):
        b = binary_payload(4 * MIB)
        c.append(Case(f"9.4.{i} 4 MiB binary in fragments of {size}", fragments(BINARY, b, size), [msg(BINARY, b)]))
    for i, chop in enumerate((64, 128, 256, 512, 1024, 2048), 1):
        t = text_payload(MIB)
        c.append(Case(f"9.5.{i} 1 MiB text in TCP writes of {chop}", [F(FIN | TEXT, t)], [msg(TEXT, t)], chop=chop))
    for i, chop in enumerate((64, 128, 256, 512, 1024, 2048), 1):
        b = binary_payload(MIB)
        c.append(Case(f"9.6.{i} 1 MiB binary in TCP writes of {chop}", [F(FIN | BINARY, b)], [msg(BINARY, b)],
                      chop=chop))
    for fam, op, gen in (("9.7", TEXT, text_payload), ("9.8", BINARY, binary_payload)):
        for i, n in enumerate((0, 16, 64, 256, 1024, 4096), 1):
            ps = []
            for k in range(1000):
                p = bytearray(gen(n))
                if n:
                    p[0] = (0x41 + k % 26) if op == TEXT else k & 0xFF
                ps.append(bytes(p))
            c.append(Case(f"{fam}.{i} 1000 messages of {n} bytes, one round trip each",
                          [F(FIN | op, p) for p in ps], [msg(op, p) for p in ps], rtt=True))
    return c


# ---------------------------------------------------------------------------
# 10 auto-fragmentation

def family10():
    t, b = text_payload(65536), binary_payload(65536)
    c = [Case("10.1.1 64 KiB text received as frames of 1300 bytes, one TCP write each", fragments(TEXT, t, 1300),
              [msg(TEXT, t)], chop="frames")]
    for size in (1, 64, 125, 126, 127, 1000, 4096, 65535, 65536):
        c.append(Case(f"10.1.1 variant: 64 KiB text and binary as frames of {size}",
                      fragments(TEXT, t, size) + fragments(BINARY, b, size), [msg(TEXT, t), msg(BINARY, b)]))
    big = text_payload(256 * 1024)
    c.append(Case("10.1.1 send side: a 256 KiB echo comes back in frames of at most 64 KiB", [F(FIN | TEXT, big)],
                  [msg(TEXT, big)], max_frame=65536))
    return c


# ---------------------------------------------------------------------------
# 12 and 13 permessage-deflate (RFC 7692)

def _corpus():
    rng = random.Random(7692)
    words = ("the quick brown fox jumps over lazy dog WebSocket frame deflate window context takeover "
             "Gr\u00fc\u00dfe M\u00e4dchen \u00fcber Stra\u00dfe \u03ba\u1f79\u03c3\u03bc\u03b5 \u20ac").split()
    human = " ".join(rng.choice(words) for _ in range(60000)).encode()
    json = b"[" + b",".join(b'{"id":%d,"name":"item-%d","tags":["a","b%d"],"score":%d.%d}' %
                            (i, i * 7, i % 13, rng.randrange(1000), rng.randrange(100)) for i in range(4000)) + b"]"
    html = b"".join(b"<div class=\"row r%d\"><span>%s</span><a href=\"/p/%d\">link</a></div>\n" %
                    (i % 7, rng.choice(words).encode(), i) for i in range(5000))
    bitmap = bytes(0 if (x // 16 + y // 16) % 2 else 255 for y in range(512) for x in range(512))
    noise = rng.randbytes(MIB)
    return {"12.1": (TEXT, json), "12.2": (BINARY, bitmap), "12.3": (TEXT, human), "12.4": (TEXT, html),
            "12.5": (BINARY, noise)}


_CORPUS = None
DEFLATE_SIZES = (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072)


def _slice(op, data, n, k):
    """The k-th message of n bytes cut from data; text is cut on code point
    boundaries (then padded with ASCII to n bytes)."""
    start = (k * 7919) % max(1, len(data) - n)
    s = data[start:start + n]
    if op == TEXT:
        while s and not utf8_ok(s):
            s = s[:-1]
        while len(s) < n:
            s += b"a"
        while s and (s[0] & 0xC0) == 0x80:
            s = s[1:] + b"a"
    return s


def deflate_messages(family, n, count, frag=None):
    global _CORPUS
    if _CORPUS is None:
        _CORPUS = _corpus()
    op, data = _CORPUS[family]
    ms = [_slice(op, data, n, k) for k in range(count)]
    return [F(FIN | op, m, deflate=True, frag=frag) for m in ms], [msg(op, m) for m in ms]


NAMES12 = {"12.1": "JSON text", "12.2": "bitmap binary", "12.3": "human text", "12.4": "HTML text",
           "12.5": "random binary"}


def family12(count=10):
    c = []
    for fam, what in NAMES12.items():
        for i, n in enumerate(DEFLATE_SIZES, 1):
            send, exp = deflate_messages(fam, n, count)
            c.append(Case(f"{fam}.{i} {count} compressed {what} messages of {n} bytes", send, exp, rtt=True))
        for i, n in enumerate(DEFLATE_SIZES[2:], len(DEFLATE_SIZES) + 1):
            send, exp = deflate_messages(fam, n, count, frag=256)
            c.append(Case(f"{fam}.{i} {count} compressed {what} messages of {n} bytes, frames of 256", send, exp,
                          rtt=True))
    return c


# 13.x: what a client offers (server role) and what a server answers
# (client role). Autobahn's 13.3/13.5 ask for window bits 8, which zlib's raw
# deflate cannot produce (it uses 9); 9 stands in for it.
OFFERS13 = [
    ("13.1", "permessage-deflate"),
    ("13.2", "permessage-deflate; server_no_context_takeover"),
    ("13.3", "permessage-deflate; server_max_window_bits=9"),
    ("13.4", "permessage-deflate; server_max_window_bits=15"),
    ("13.5", "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"),
    ("13.6", "permessage-deflate; server_no_context_takeover; server_max_window_bits=15"),
    ("13.7", "permessage-deflate; server_max_window_bits=9, permessage-deflate; server_no_context_takeover, "
             "permessage-deflate"),
    ("13.x client_no_context_takeover", "permessage-deflate; client_no_context_takeover"),
    ("13.x client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
    ("13.x client_max_window_bits", "permessage-deflate; client_max_window_bits"),
    ("13.x everything at 9", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                             "server_max_window_bits=9; client_max_window_bits=9"),
    ("13.x windows 12 and 10", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"),
]
ANSWERS13 = [
    ("13.1", {}),
    ("13.2", {"server_no_context_takeover": None}),
    ("13.3", {"server_max_window_bits": 9}),
    ("13.4", {"server_max_window_bits": 15}),
    ("13.5", {"server_no_context_takeover": None, "server_max_window_bits": 9}),
    ("13.6", {"server_no_context_takeover": None, "server_max_window_bits": 15}),
    ("13.x client_no_context_takeover", {"client_no_context_takeover": None}),
    ("13.x client_max_window_bits=9", {"client_max_window_bits": 9}),
    ("13.x client_max_window_bits=15", {"client_max_window_bits": 15}),
    ("13.x everything at 9", {"server_no_context_takeover": None, "client_no_context_takeover": None,
                              "server_max_window_bits": 9, "client_max_window_bits": 9}),
    ("13.x windows 12 and 10", {"server_max_window_bits": 12, "client_max_window_bits": 10}),
]


def family13(count=4):
    """Under each negotiation, messages of every size from 12.1 (text) and
    12.5 (binary), both fragmented and not."""
    def stream():
        send, exp = [], []
        for n in DEFLATE_SIZES:
            for fam, frag in (("12.3", None), ("12.5", None), ("12.1", 256)):
                s, e = deflate_messages(fam, n, count, frag)
                send += s
                exp += e
        return send, exp

    c = []
    send, exp = stream()
    for name, offer in OFFERS13:
        c.append(Case(f"{name} offer '{offer}'", send, exp, rtt=True, roles=("server",), offer=offer))
    for name, answer in ANSWERS13:
        shown = "; ".join(k if v is None else f"{k}={v}" for k, v in answer.items()) or "no parameters"
        c.append(Case(f"{name} answer '{shown}'", send, exp, rtt=True, roles=("client",), answer=answer))
    return c


def family_rfc7692():
    """Failures and edge cases of compressed frames (tests/test_deflate.cpp)."""
    h = F(FIN | TEXT, b"Hello, Hello, Hello, Hello, Hello!", deflate=True)
    hm = msg(TEXT, b"Hello, Hello, Hello, Hello, Hello!")
    return [
        Case("7692 uncompressed messages (RSV1 clear) are accepted", [F(FIN | TEXT, HELLO), F(FIN | BINARY, b"\x00\xff")],
             [msg(TEXT, HELLO), msg(BINARY, b"\x00\xff")]),
        Case("7692 compressed and uncompressed messages mixed", [h, F(FIN | TEXT, HELLO), h], [hm, msg(TEXT, HELLO), hm]),
        Case("7692 an empty compressed message (the single byte 00)", [F(FIN | TEXT | RSV1, b"\x00")], [msg(TEXT, b"")]),
        Case("7692 an empty final fragment after a non-empty one", [F(FIN | TEXT, b"abc" * 40, deflate=True, frag=-1)],
             [msg(TEXT, b"abc" * 40)]),
        Case("7692 a compressed ping fails 1002", [F(FIN | RSV1 | PING, b"\x00")], end=("fail", 1002)),
        Case("7692 RSV1 on a continuation fails 1002", [F(RSV1 | TEXT, X("f248cdc9c90700")), F(FIN | RSV1 | CONT, b"\x00")],
             end=("fail", 1002)),
        Case("7692 RSV2 still fails 1002", [F(FIN | 0x20 | TEXT, HELLO)], end=("fail", 1002)),
        Case("7692 corrupt compressed data fails 1007", [F(FIN | RSV1 | TEXT, X("ffffffffffff"))], end=("fail", 1007)),
        Case("7692 compressed text inflating to invalid UTF-8 fails 1007",
             [F(FIN | TEXT, KOSME + X("eda080") + b"edited", deflate=True)], end=("fail", 1007)),
        Case("7692 a 64 MiB decompression bomb fails 1009 at --max-size",
             [F(FIN | BINARY, bytes(64 * MIB), deflate=True)], end=("fail", 1009)),
    ]


def all_cases(deflate):
    if deflate:
        return family12() + family13() + family_rfc7692()
    return family1() + family2() + family3() + family4() + family5() + family6() + family7() + family9() + \
        family10()
