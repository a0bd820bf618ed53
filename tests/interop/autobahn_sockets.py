#!/usr/bin/env python3
"""Autobahn-style cases over real sockets, frames written byte by byte in
Python (no WebSocket library): against `gust serve --echo` (we are the
client: role "server" tests gust's server) and `gust connect --echo` (we are
the server: role "client"). The case tables are in autobahn_cases.py; the
core runs the same families in memory (tests/test_autobahn.cpp).

usage: autobahn_sockets.py server|client|server-deflate|client-deflate GUST
                           [--deflate] [--only TEXT] [-v]
  --deflate (or the -deflate roles): families 12 and 13 and RFC 7692 cases,
            against `--deflate`; compression is ours, with zlib raw deflate
  --only    run the cases whose name starts with TEXT (to reproduce one)
  -v        print every case, not only failures

Each case gets its own connection. Strict outcomes: the exact messages and
opcodes back, every frame masked (or not) as its role requires, the exact
close code, the TCP connection closed by gust where it must fail fast, and
for `gust connect` its exit status. Every read is bounded by a timeout.
Ends with "N passed, M failed" (and the known failures, not counted as
passed). A case with known_failure prints KNOWN.
"""
import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import autobahn_cases as ab  # noqa: E402
from autobahn_cases import CLOSE, CONT, FIN, PING, PONG, RSV1  # noqa: E402

READ_TIMEOUT = 5.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_SIZE = "16m"


def mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def header(b0, n, masked):
    m = 0x80 if masked else 0
    if n < 126:
        return bytes([b0, m | n])
    if n < 65536:
        return bytes([b0, m | 126]) + struct.pack("!H", n)
    return bytes([b0, m | 127]) + struct.pack("!Q", n)


def encode(b0, payload, masked):
    """(wire bytes, header length) of one frame."""
    h = header(b0, len(payload), masked)
    if not masked:
        return h + payload, len(h)
    key = os.urandom(4)
    return h + key + mask(payload, key), len(h) + 4


class Failure(Exception):
    pass


def parse_params(value):
    """'permessage-deflate; a; b=9, permessage-deflate' -> [(name, {a: None, b: 9})]."""
    offers = []
    for elem in value.split(","):
        parts = [p.strip() for p in elem.split(";")]
        params = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            v = v.strip().strip('"')
            params[k.strip().lower()] = int(v) if v else None
        offers.append((parts[0].lower(), params))
    return offers


def answer_fits(offer, answer):
    """RFC 7692 7.1: may a server answer this offer with these parameters?"""
    for k, v in answer.items():
        if k in ("server_no_context_takeover", "client_no_context_takeover"):
            if v is not None:
                return False
        elif k == "server_max_window_bits":
            if v is None or not 8 <= v <= 15:
                return False
            if offer.get(k) is not None and v > offer[k]:
                return False
        elif k == "client_max_window_bits":
            if k not in offer or v is None or not 8 <= v <= 15:
                return False
            if offer[k] is not None and v > offer[k]:
                return False
        else:
            return False
    if "server_no_context_takeover" in offer and "server_no_context_takeover" not in answer:
        return False
    if offer.get("server_max_window_bits") is not None and "server_max_window_bits" not in answer:
        return False
    return True


class Deflate:
    """One direction's compression state as negotiated."""

    def __init__(self, bits, no_context):
        self.bits, self.no_context = bits, no_context
        self.z = None

    def compress(self, data):
        if self.z is None or self.no_context:
            self.z = zlib.compressobj(6, zlib.DEFLATED, -self.bits, 8)
        out = self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4] or b"\x00"

    def inflate(self, data):
        if self.z is None or self.no_context:
            self.z = zlib.decompressobj(-self.bits)
        return self.z.decompress(data + b"\x00\x00\xff\xff")


class Conn:
    """Our end of one WebSocket connection. we_mask: we are the client."""

    def __init__(self, sock, we_mask):
        self.s = sock
        self.s.settimeout(READ_TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.we_mask = we_mask
        self.buf = bytearray()
        self.ours = self.theirs = None  # Deflate, when negotiated
        self.msg = None  # (opcode, [payloads], compressed) of a message being reassembled
        self.max_frame = 0
        self.compressed_echoes = 0

    # -- writing ------------------------------------------------------------

    def frames(self, f):
        """The frames for one F: [(wire, header length)]."""
        masked = self.we_mask != f.wrong_mask
        if not f.deflate:
            wire, hl = encode(f.b0, f.payload, masked)
            if f.keep is not None:
                wire = wire[:hl + f.keep]
            return [(wire, hl)]
        data = self.ours.compress(f.payload)
        op, fin = f.b0 & 0x0F, f.b0 & FIN
        if f.frag == -1:  # all of it in a first frame, then an empty final one
            pieces = [data, b""]
        elif f.frag:
            pieces = [data[i:i + f.frag] for i in range(0, len(data), f.frag)]
        else:
            pieces = [data]
        out = []
        for i, p in enumerate(pieces):
            b0 = (op | RSV1 if i == 0 else CONT) | (fin if i == len(pieces) - 1 else 0)
            out.append(encode(b0, p, masked))
        return out

    def writes(self, frames, chop):
        """The TCP writes for a list of F under a case's chop."""
        enc = [fr for f in frames for fr in self.frames(f)]
        if chop is None:
            return [b"".join(w for w, _ in enc)]
        if chop == "frames":
            return [w for w, _ in enc]
        whole = b"".join(w for w, _ in enc)
        if isinstance(chop, int):
            return [whole[i:i + chop] for i in range(0, len(whole), chop)]
        starts = [0]
        for w, _ in enc:
            starts.append(starts[-1] + len(w))
        if chop[0] == "frames_at":
            cuts = [starts[i] for i in chop[1]]
        else:  # ("at", frame index, payload offsets)
            _, i, offsets = chop
            cuts = [starts[i] + enc[i][1] + off for off in offsets]
        cuts = [0] + cuts + [len(whole)]
        return [whole[a:b] for a, b in zip(cuts, cuts[1:])]

    def write_all(self, chunks):
        # Small pauses let the peer read each write on its own.
        delay = 0.0005 if 1 < len(chunks) <= 2000 else 0
        for i, c in enumerate(chunks):
            if i and delay:
                time.sleep(delay)
            self.s.sendall(c)

    def send_close(self, code=1000):
        self.s.sendall(encode(FIN | CLOSE, struct.pack("!H", code), self.we_mask)[0])

    # -- reading ------------------------------------------------------------

    def read_more(self, timeout=READ_TIMEOUT):
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(1 << 20)
        except socket.timeout:
            return "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return "eof"
        if not d:
            return "eof"
        self.buf += d
        return None

    def raw_frame(self, timeout):
        """(b0, payload, masked) or "eof"/"timeout"."""
        while True:
            b = self.buf
            if len(b) >= 2:
                n, hl = b[1] & 0x7F, 2
                if n == 126:
                    hl = 4
                elif n == 127:
                    hl = 10
                masked = bool(b[1] & 0x80)
                if len(b) >= hl:
                    if n == 126:
                        n = struct.unpack_from("!H", b, 2)[0]
                    elif n == 127:
                        n = struct.unpack_from("!Q", b, 2)[0]
                    total = hl + (4 if masked else 0) + n
                    if len(b) >= total:
                        payload = bytes(b[total - n:total])
                        if masked:
                            payload = mask(payload, bytes(b[hl:hl + 4]))
                        b0 = b[0]
                        del self.buf[:total]
                        return b0, payload, masked
            r = self.read_more(timeout)
            if r:
                return r

    def event(self, timeout=READ_TIMEOUT):
        """The next thing gust sends, checked against RFC 6455: ("msg", op,
        payload), ("pong", p), ("ping", p), ("close", p), ("eof",),
        ("timeout",). A frame breaking the rules raises Failure."""
        while True:
            r = self.raw_frame(timeout)
            if isinstance(r, str):
                if self.msg is not None and r == "eof":
                    raise Failure("EOF inside a message")
                return (r,)
            b0, payload, masked = r
            op, fin, rsv = b0 & 0x0F, bool(b0 & FIN), b0 & 0x70
            what = f"frame op {op} fin {int(fin)} rsv {rsv >> 4} len {len(payload)}"
            if masked == self.we_mask:
                raise Failure(f"{what}: {'masked' if masked else 'unmasked'} (RFC 6455 5.1)")
            if rsv & 0x30 or (rsv & 0x40 and (self.theirs is None or op not in (1, 2))):
                raise Failure(f"{what}: reserved bits set")
            if op >= 8:
                if not fin or len(payload) > 125 or op not in (CLOSE, PING, PONG):
                    raise Failure(f"{what}: invalid control frame")
                if op == CLOSE:
                    return ("close", payload)
                return ("ping" if op == PING else "pong", payload)
            if op in (1, 2):
                if self.msg is not None:
                    raise Failure(f"{what}: new message inside a fragmented one")
                self.msg = (op, [], bool(rsv & 0x40))
            elif op == CONT:
                if self.msg is None:
                    raise Failure(f"{what}: continuation without a message")
            else:
                raise Failure(f"{what}: reserved opcode")
            self.max_frame = max(self.max_frame, len(payload))
            self.msg[1].append(payload)
            if fin:
                mop, parts, compressed = self.msg
                self.msg = None
                data = b"".join(parts)
                if compressed:
                    self.compressed_echoes += 1
                    try:
                        data = self.theirs.inflate(data)
                    except zlib.error as e:
                        raise Failure(f"compressed message of {len(data)} bytes does not inflate with window "
                                      f"{self.theirs.bits}{', no context' if self.theirs.no_context else ''}: {e}")
                return ("msg", mop, data)

    def data_event(self):
        """The next event, answering keepalive pings gust may send."""
        while True:
            e = self.event()
            if e[0] != "ping":
                return e
            self.s.sendall(encode(FIN | PONG, e[1], self.we_mask)[0])

    def eof(self, timeout=READ_TIMEOUT):
        """True at EOF; anything arriving first is a failure."""
        r = self.raw_frame(timeout)
        if r == "eof":
            return True
        if r == "timeout":
            return False
        raise Failure(f"frame after the close: op {r[0] & 15} len {len(r[1])}")


def short(b):
    return repr(b[:24]) + (f"...({len(b)} bytes)" if len(b) > 24 else "")


def show(e):
    if e[0] == "msg":
        return f"message op {e[1]} {short(e[2])}"
    if len(e) > 1:
        return f"{e[0]} {short(e[1])}"
    return e[0]


def check_close(e, code, what):
    if e[0] != "close":
        raise Failure(f"{what}: expected a close frame with {code}, got {show(e)}")
    p = e[1]
    if code is None:
        if p:
            raise Failure(f"{what}: expected an empty close frame, got {short(p)}")
        return
    if len(p) < 2 or struct.unpack("!H", p[:2])[0] != code:
        raise Failure(f"{what}: expected close code {code}, got {short(p)}"
                      + (f" = {struct.unpack('!H', p[:2])[0]}" if len(p) >= 2 else ""))
    try:
        p[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(f"{what}: close reason is not UTF-8: {short(p)}")


def expect_item(conn, item, index):
    kind = item[0]
    if kind == "msg":
        e = conn.data_event()
        if e[:3] != ("msg", item[1], item[2]):
            raise Failure(f"expectation {index}: wanted message op {item[1]} {short(item[2])}, got {show(e)}")
    elif kind == "pong":
        e = conn.data_event()
        if e != ("pong", item[1]):
            raise Failure(f"expectation {index}: wanted pong {short(item[1])}, got {show(e)}")
    else:  # pongs: in order, possibly coalesced, the last one for the last ping
        want, nxt = item[1], 0
        while True:
            e = conn.data_event()
            if e[0] != "pong":
                raise Failure(f"expectation {index}: wanted pongs for {len(want)} pings, got {show(e)}")
            while nxt < len(want) and want[nxt] != e[1]:
                nxt += 1
            if nxt == len(want):
                raise Failure(f"expectation {index}: pong {short(e[1])} answers no outstanding ping in order")
            nxt += 1
            if nxt == len(want):
                return


def play(case, conn, role):
    """Runs one case on an open connection; raises Failure."""
    sender = None
    errors = []
    if case.gust_closes is not None:
        check_close(conn.data_event(), 1000, "gust connect with its input at EOF closes first")
    if case.rtt:
        for i, (f, item) in enumerate(zip(case.send, case.expect)):
            conn.write_all(conn.writes([f], case.chop))
            expect_item(conn, item, i)
    else:
        chunks = conn.writes(case.send, case.chop)
        size = sum(len(c) for c in chunks)

        def send():
            try:
                conn.write_all(chunks)
            except OSError as e:  # the peer may fail and close while we write
                errors.append(e)

        if size > 256 * 1024:  # echoes flow back while we write
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
        else:
            send()
        for i, item in enumerate(case.expect):
            expect_item(conn, item, i)
        if sender:
            sender.join(60)
    if errors and case.end == "open":
        raise Failure(f"writing failed: {errors[0]}")
    if case.max_frame and conn.max_frame > case.max_frame:
        raise Failure(f"an echoed frame carried {conn.max_frame} bytes, more than {case.max_frame}")
    if conn.ours is not None and any(i[0] == "msg" and len(i[2]) >= 1024 for i in case.expect) \
            and conn.compressed_echoes == 0:
        raise Failure("no echo came back compressed, though messages of 1 KiB and more were sent")
    end = case.end
    if end == "closed":  # the close handshake is over: nothing more
        r = conn.raw_frame(0.3)
        if r not in ("timeout", "eof"):
            raise Failure(f"frame after the close handshake: op {r[0] & 15} len {len(r[1])}")
        return
    if end == "open":
        conn.send_close(1000)
        check_close(conn.data_event(), 1000, "after our close 1000")
    else:
        kind, code = end
        e = conn.data_event()
        check_close(e, code, "end" if kind == "close" else "the connection must fail")
    # 7.1.1: a server closes TCP after the close handshake; a failing
    # endpoint closes at once (7.1.7). A client waits for the server.
    if role == "server" or end[0] == "fail":
        if not conn.eof():
            raise Failure("TCP connection still open 5 s after the close frame")
    elif case.quiet:
        r = conn.raw_frame(0.3)
        if r not in ("timeout", "eof"):
            raise Failure(f"frame after the close: op {r[0] & 15} len {len(r[1])}")


# ---- handshakes ----------------------------------------------------------

def read_head(conn):
    while b"\r\n\r\n" not in conn.buf:
        r = conn.read_more()
        if r:
            raise Failure(f"handshake: {r} before the end of the head ({bytes(conn.buf[:60])!r})")
    head, _, rest = bytes(conn.buf).partition(b"\r\n\r\n")
    conn.buf = bytearray(rest)
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], {k: ", ".join(v) for k, v in fields.items()}


DEFAULT_OFFER = "permessage-deflate; client_max_window_bits"


def client_handshake(conn, host, deflate, case):
    """We are the client of gust serve."""
    key = base64.b64encode(os.urandom(16))
    offer = (case.offer or DEFAULT_OFFER) if deflate else None
    req = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n")
    if offer:
        req += f"Sec-WebSocket-Extensions: {offer}\r\n"
    conn.s.sendall((req + "\r\n").encode())
    status, fields = read_head(conn)
    if not status.startswith("HTTP/1.1 101"):
        raise Failure(f"handshake: {status}")
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    if fields.get("sec-websocket-accept") != want:
        raise Failure(f"handshake: Sec-WebSocket-Accept {fields.get('sec-websocket-accept')}")
    ext = fields.get("sec-websocket-extensions")
    if not deflate:
        if ext:
            raise Failure(f"handshake: extension '{ext}' accepted though none was offered")
        return
    if not ext:
        raise Failure(f"handshake: gust serve --deflate declined '{offer}'")
    answers = parse_params(ext)
    if len(answers) != 1 or answers[0][0] != "permessage-deflate":
        raise Failure(f"handshake: answer '{ext}'")
    ans = answers[0][1]
    offers = [p for _, p in parse_params(offer)]
    fits = [o for o in offers if answer_fits(o, ans)]
    if not fits:
        raise Failure(f"handshake: answer '{ext}' fits no offer of '{offer}' (RFC 7692 7.1)")
    o = fits[0]
    bits = min(b for b in (ans.get("client_max_window_bits"), o.get("client_max_window_bits"), 15) if b)
    conn.ours = Deflate(bits, "client_no_context_takeover" in ans or "client_no_context_takeover" in o)
    conn.theirs = Deflate(ans.get("server_max_window_bits") or 15, "server_no_context_takeover" in ans)


def server_handshake(conn, deflate, case):
    """We are the server for gust connect."""
    status, fields = read_head(conn)
    key = fields.get("sec-websocket-key", "")
    if not status.startswith("GET ") or fields.get("sec-websocket-version") != "13" or not key:
        raise Failure(f"handshake: request '{status}' {fields}")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n")
    ext = fields.get("sec-websocket-extensions")
    if deflate:
        if not ext:
            raise Failure("handshake: gust connect --deflate offered no extension")
        offers = [p for name, p in parse_params(ext) if name == "permessage-deflate"]
        ans = case.answer or {}
        fits = [o for o in offers if answer_fits(o, ans)]
        if not fits:
            raise Failure(f"handshake: cannot answer {ans} to gust's offer '{ext}'")
        resp += "Sec-WebSocket-Extensions: permessage-deflate" + "".join(
            f"; {k}" if v is None else f"; {k}={v}" for k, v in ans.items()) + "\r\n"
        conn.ours = Deflate(ans.get("server_max_window_bits") or 15, "server_no_context_takeover" in ans)
        conn.theirs = Deflate(ans.get("client_max_window_bits") or 15, "client_no_context_takeover" in ans)
    elif ext:
        raise Failure(f"handshake: gust connect without --deflate offered '{ext}'")
    conn.s.sendall((resp + "\r\n").encode())


# ---- runners -------------------------------------------------------------

class Results:
    def __init__(self, role, verbose):
        self.verbose = verbose
        self.passed = self.failed = self.known = 0
        self.families = {}
        self.lock = threading.Lock()

    def record(self, case, error, seconds):
        with self.lock:
            self._record(case, error, seconds)

    def _record(self, case, error, seconds):
        fam = self.families.setdefault(case.family, [0, 0, 0, 0.0])
        fam[3] += seconds
        if case.known_failure:
            if error:
                self.known += 1
                fam[2] += 1
                print(f"KNOWN {case.name}: {case.known_failure} ({error})", flush=True)
                return
            error = f"known failure '{case.known_failure}' now passes: drop the mark"
        if error:
            self.failed += 1
            fam[1] += 1
            print(f"FAIL  {case.name}: {error}", flush=True)
        else:
            self.passed += 1
            fam[0] += 1
            if self.verbose:
                print(f"ok    {case.name} ({seconds * 1000:.0f} ms)", flush=True)


def start_server(deflate):
    args = [GUST, "serve", "--echo", "--port", "0", "--max-size", MAX_SIZE] + (["--deflate"] if deflate else [])
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on ws://"):
        p.kill()
        raise SystemExit(f"gust serve did not start: {line!r}")
    host, port = line.split()[-1][len("ws://"):].rstrip("/").rsplit(":", 1)
    return p, host, int(port)


def run_as_client(cases, deflate, res):
    """Role "server": gust serve --echo, we connect once per case."""
    p, host, port = start_server(deflate)
    try:
        for case in cases:
            t0 = time.time()
            error = None
            s = None
            try:
                s = socket.create_connection((host, port), timeout=READ_TIMEOUT)
                conn = Conn(s, we_mask=True)
                client_handshake(conn, host, deflate, case)
                play(case, conn, "server")
            except Failure as e:
                error = str(e)
            except OSError as e:
                error = f"socket: {e}"
            finally:
                if s:
                    s.close()
            if p.poll() is not None:
                error = f"{error or 'passed'}; then gust serve exited with {p.returncode}: restarted"
                p, host, port = start_server(deflate)
            res.record(case, error, time.time() - t0)
    finally:
        p.terminate()
        p.wait(10)


def run_as_server(cases, deflate, res, jobs=3):
    """Role "client": we listen, one gust connect --echo per case. Starting
    a process dominates the time, so `jobs` workers run cases side by side,
    each with its own listener (a connection is then always its case's)."""
    workers = [threading.Thread(target=serve_cases, args=(cases[i::jobs], deflate, res)) for i in range(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def serve_cases(cases, deflate, res):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(10)
    url = f"ws://127.0.0.1:{lsock.getsockname()[1]}/"
    args = [GUST, "connect", url, "--max-size", MAX_SIZE] + (["--deflate"] if deflate else [])
    for case in cases:
        t0 = time.time()
        error = None
        echo = [] if case.gust_closes is not None else ["--echo"]
        proc = subprocess.Popen(args + echo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        conn = None
        try:
            s, _ = lsock.accept()
            conn = Conn(s, we_mask=False)
            server_handshake(conn, deflate, case)
            play(case, conn, "client")
        except Failure as e:
            error = str(e)
        except OSError as e:
            error = f"socket: {e}"
        finally:
            if conn:
                conn.s.close()
        try:
            out, err = proc.communicate(timeout=10)
            # gust connect exits 0 after a clean close with 1000, 1001 or 1005.
            end = case.end
            want = 0 if end in ("open", "closed") or (end[0] == "close" and end[1] in (1000, 1001, None)) else 1
            if error is None and proc.returncode != want:
                error = f"gust connect exited {proc.returncode}, expected {want} ({err.decode(errors='replace').strip()})"
            if error is None and case.gust_closes is not None and out != case.gust_closes:
                error = f"gust connect printed {out!r}, expected {case.gust_closes!r}"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            error = (error or "") + "; gust connect still running 10 s after we closed"
        res.record(case, error, time.time() - t0)
    lsock.close()


def main(argv):
    args = [a for a in argv[1:]]
    verbose = "-v" in args
    deflate = "--deflate" in args
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = args[i + 1]
        del args[i:i + 2]
    args = [a for a in args if a not in ("-v", "--deflate")]
    if len(args) != 2 or args[0] not in ("server", "client", "server-deflate", "client-deflate"):
        print(__doc__)
        return 2
    role = args[0]
    if role.endswith("-deflate"):
        role, deflate = role[:-len("-deflate")], True
    global GUST
    GUST = os.path.abspath(args[1])
    cases = [c for c in ab.all_cases(deflate) if role in c.roles and (only is None or c.name.startswith(only))]
    res = Results(role, verbose)
    t0 = time.time()
    (run_as_client if role == "server" else run_as_server)(cases, deflate, res)
    elapsed = time.time() - t0
    label = f"autobahn-{role}{'-deflate' if deflate else ''}"
    adapter = os.environ.get("GUST_ADAPTER", "default")
    for fam in sorted(res.families, key=lambda f: [int(x) if x.isdigit() else 0 for x in f.split(".")]):
        ok, bad, known, secs = res.families[fam]
        print(f"{label} family {fam}: {ok} passed, {bad} failed" + (f", {known} known" if known else "")
              + f" ({secs:.1f} s in its cases)")
    known = f", {res.known} known failures (not counted as passed)" if res.known else ""
    print(f"{label} on {adapter} in {elapsed:.1f} s: {res.passed} passed, {res.failed} failed{known}")
    return 0 if res.failed == 0 and res.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
