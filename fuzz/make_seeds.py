#!/usr/bin/env python3
"""Writes the seed inputs of the session fuzz targets into fuzz/corpus/<target>/seed-*.

    python3 fuzz/make_seeds.py

The seeds are committed; rerun this after changing an input format in
core/src/fuzzing.rs or core/src/fuzzing/session_outcomes/ (whose module docs describe the
formats this script follows). libFuzzer adds what it finds next to them when run locally.
session_bytes' older seeds (seed-files, -held, -junk, -login, -transfers) were written by hand
and are not rewritten here.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


# ----- session_bytes: [read size | hold | small, setup, input...] ------------------------------


def pad(line, n, prefix=b""):
    """`prefix + line`, padded to n bytes with Telnet commands the framer drops."""
    k = n - len(prefix) - len(line)
    assert k >= 0 and k != 1, (line, k)
    p = b""
    if k % 2:
        p += b"\xff\xfb\x01"  # IAC WILL 1
        k -= 3
    p += b"\xff\xf1" * (k // 2)  # IAC NOP
    return prefix + p + line


def session_bytes(name, n, setup, lines, hold=False):
    """Each line is one read of n bytes, so that a read holding AUTH ends with it (what
    follows AUTH in the same read is dropped, as sent in the clear)."""
    body = b"".join(pad(text.encode() + b"\r\n", n, pre) for pre, text in lines)
    write("session_bytes", name, bytes([n | (0x40 if hold else 0), setup]) + body)


def L(text, pre=b""):
    return (pre, text)


T0 = b"\x00\r\n"  # a read starting with 0x00 moves the clock 1 s (the NUL line earns a 500)
T1 = b"\x01\r\n"  # ... 400 s

# setup: bits 0-1 who logs in first (alice, bob, anonymous, nobody), 2 TLS available,
# 3 anonymous off, 4 implicit TLS, 5 TLS required for accounts, 6 CCC, 7 certificate (alice)
session_bytes("seed-prelogin", 24, 0x03, [L("SYST"), L("FEAT"), L("PWD"), L("USER anonymous"),
              L("PASS guest"), L("PWD"), L("REIN"), L("USER alice"), L("PASS secret"), L("QUIT")])
session_bytes("seed-auth-tls", 24, 0x47, [L("FEAT"), L("PBSZ 0"), L("AUTH TLS"), L("PBSZ 0"),
              L("PROT P"), L("USER alice"), L("PASS secret"), L("EPSV"), L("LIST"), L("CCC"),
              L("REIN"), L("AUTH SSL"), L("QUIT")])
session_bytes("seed-cert", 24, 0x87, [L("AUTH TLS"), L("USER alice"), L("PWD"), L("REIN"),
              L("USER bob"), L("PASS pw"), L("QUIT")])
session_bytes("seed-noanon", 24, 0x0B, [L("USER anonymous"), L("PASS x"), L("NOOP", T0),
              L("USER ftp"), L("PASS y"), L("NOOP", T0), L("USER alice"), L("PASS wrong"),
              L("USER alice", T0), L("PASS secret"), L("NOOP", T1)])
session_bytes("seed-required", 24, 0x27, [L("USER alice"), L("AUTH TLS"), L("USER alice"),
              L("PASS secret"), L("PASV"), L("RETR a.txt"), L("PBSZ 0"), L("PROT P"), L("PASV"),
              L("RETR a.txt"), L("CCC")])
session_bytes("seed-implicit", 24, 0x53, [L("AUTH TLS"), L("USER bob"), L("PASS pw"), L("CCC"),
              L("PROT C"), L("EPSV"), L("NLST"), L("QUIT")])

# ----- session_outcomes: [setup a, b, c, operations...] ----------------------------------------
# Operations: a answer, b transfer step, c send a line, d queue a line, e ABOR with Synch,
# f late outcome, g disconnect, h clock. The helpers give each its arguments.


def c(line):
    return b"c" + line.encode() + b"\r\n"


def d(line):
    return b"d" + line.encode() + b"\r\n"


def amount(n=0):
    return [0] if n == 0 else [1, n] if n < 256 else [2, n & 255, n >> 8]


def file_info(kind=0, name=0, size=100, mode=0, owner=0):
    # kind: 0 file, 4 dir; mode: index in [644, 755, 000, 777, 444, 1777, 600, 7777];
    # owner: index in [alice, ftp, bob, "", carol]
    return [kind, name] + amount(size) + [0, mode, owner, 0] + amount(1) + [1]


def a_login():
    return b"a" + bytes([0, 0, 0])


def a_file(**kw):
    return b"a" + bytes([0] + file_info(**kw))


def a_dir():
    return a_file(kind=4, name=1, size=0, mode=1)


def a_missing():
    return b"a" + bytes([7, 0])  # NotFound


def a_port(port=50000):
    return b"a" + bytes([0, port & 255, port >> 8])


def a_entries(n=2):
    return b"a" + bytes([0, n] + sum((file_info(kind=4 * (i % 2), name=i) for i in range(n)), []) + [0])


def a_ok():
    return b"a" + bytes([0])


START = b"b" + bytes([0])


def progress(n):
    return b"b" + bytes([0] + amount(n))


def mark(text, offset):
    return b"b" + bytes([2, len(text) - 1] + [ord(ch) - 0x21 for ch in text] + amount(offset))


def end_ok(n=100):
    return b"b" + bytes([3, 0] + amount(n))


def end_aborted():
    return b"b" + bytes([3, 1, 0]) + bytes(amount(0))


def checksum_ok():
    return b"b" + bytes([0, 0] + amount(0) + amount(100))


def clock(ms=0, secs=0):
    if secs:
        return b"h" + bytes([secs & 255, secs >> 8, 2])
    return b"h" + bytes([ms & 255, ms >> 8, 0])


LOGIN = c("USER alice") + c("PASS secret") + a_login()


def outcomes(name, setup, *ops):
    write("session_outcomes", name, bytes(setup) + b"".join(ops))


outcomes("seed-retr", [0, 0, 0], LOGIN, c("TYPE I"), c("PASV"), a_port(), c("RETR a.txt"),
         a_file(), START, progress(50), c("STAT"), c("NOOP"), end_ok(), c("QUIT"))
outcomes("seed-stor-block-marks", [0, 0, 0], LOGIN, c("MODE B"), c("STRU R"), c("TYPE E"),
         c("EPSV"), a_port(), c("STOR new.txt"), a_missing(), a_dir(), START,
         mark("MARK01", 100), progress(200), mark("M2", 300), end_ok(400), c("REST 300"),
         c("EPSV"), a_port(), c("STOR new.txt"), a_file(), START, end_ok())
outcomes("seed-abor", [0, 0, 0], LOGIN, c("PASV"), a_port(), c("RETR a.txt"), a_file(), START,
         b"e", c("STAT"), d("NOOP"), c("PWD"), end_aborted(), b"f" + bytes([5, 0, 1]),
         c("QUIT"))
outcomes("seed-abor-before-start", [0, 0, 0], LOGIN, c("PASV"), a_port(), c("LIST"), a_dir(),
         a_entries(), c("ABOR"), c("QUIT"), b"b" + bytes([6, 1, 0, 0]))
outcomes("seed-stou-appe", [0, 0, 0], LOGIN, c("MODE C"), c("PORT 127,0,0,1,195,80"),
         c("STOU up"), a_dir(), START, mark("X", 10), end_ok(), c("EPRT |1|127.0.0.1|50001|"),
         c("APPE a.txt"), a_file(), START, end_ok())
outcomes("seed-hash", [0, 0, 0], LOGIN, c("RANG 0 99"), c("HASH a.txt"), a_file(), c("STAT"),
         b"b" + bytes([3] + amount(50)), checksum_ok(), c("XCRC a.txt 0 10"), a_file(), b"e",
         b"b" + bytes([0, 1, 0]), c("OPTS HASH MD5"), c("QUIT"))
outcomes("seed-pipelined", [0, 0, 0], d("USER alice"), d("PASS secret"), d("PASV"), d("MLSD"),
         c("NOOP"), a_login(), a_port(), a_dir(), a_entries(3), START, end_ok(), c("QUIT"))
outcomes("seed-tls", [1, 0, 0], c("FEAT"), c("AUTH TLS"), a_ok(), c("PBSZ 0"), c("PROT P"),
         c("USER alice"), c("PASS x"), a_login(), c("CCC"), c("REIN"), c("AUTH SSL"),
         b"a" + bytes([6, 0]), c("USER alice"), a_login(), c("QUIT"))
outcomes("seed-login-failures", [0, 0, 0], c("USER bob"), c("PASS x"), b"a" + bytes([6]),
         c("NOOP"), clock(ms=1000), c("USER anonymous"), c("PASS guest"), b"a" + bytes([7]))
outcomes("seed-timeouts", [0, 0, 4], LOGIN, c("NOOP"), clock(secs=29), c("NOOP"),
         clock(secs=31))
outcomes("seed-formats", [0, 0, 0], LOGIN, c("OPTS MODE Z LEVEL 9"), c("MODE Z"),
         c("SITE CODEPAGE IBM-037"), c("TYPE E C"), c("STRU P"), c("PASV"), a_port(),
         c("RETR a.txt"), a_file(), START, end_ok(), c("TYPE A T"), c("STRU R"), c("MODE C"),
         c("EPSV"), a_port(), c("NLST"), a_dir(), a_entries(), START, end_ok(), c("REIN"),
         c("USER bob"), c("PASS pw"), a_login(), c("EPSV"), a_port(), c("RETR b"), a_file(),
         START, end_ok())
outcomes("seed-files", [0, 0, 0], LOGIN, c("CWD dir"), a_dir(), c("MKD new"), a_dir(), a_ok(),
         c("RNFR a.txt"), a_file(), a_dir(), c("RNTO b.txt"), a_missing(), a_dir(), a_ok(),
         c("SIZE a.txt"), a_file(), c("TYPE A"), c("SIZE a.txt"), a_file(),
         b"a" + bytes([0] + amount(120)), c("MDTM a.txt"), a_file(), c("MLST a.txt"),
         a_file(), a_dir(), c("STAT ."), a_dir(), a_entries(), c("SITE CHMOD 600 a.txt"),
         a_file(), a_ok(), c("DELE a.txt"), a_file(), a_dir(), a_ok(), c("RMD dir"), a_dir(),
         a_dir(), a_ok())
outcomes("seed-disconnect", [0, 0, 0], LOGIN, c("PASV"), a_port(), c("STOR x"), a_missing(),
         a_dir(), START, progress(10), b"g")
outcomes("seed-admin", [0, 0, 0], c("USER root"), c("PASS x"), b"a" + bytes([0, 2, 0]),
         c("SITE WHO"), b"a" + bytes([0, 2] + [0, 0, 0] * 2), c("SITE STAT"),
         b"a" + bytes([0] + [0] * 4), c("SITE DESCUSER bob"), b"a" + bytes([0, 0, 0, 0, 0]),
         c("SITE DESCUSER nobody"), b"a" + bytes([0, 1]), c("QUIT"))
outcomes("seed-implicit-cert", [2, 0, 1], c("USER alice"), a_login(), c("PROT C"),
         c("EPSV ALL"), c("PASV"), c("EPSV"), a_port(), c("LIST"), a_dir(), a_entries(1),
         START, end_ok(), c("QUIT"))

# ----- codec_round_trip: [TYPE+STRU, MODE, marker interval, marker, splits..., file seed] --------
# codec_decode: [TYPE+STRU, MODE, start, splits..., wire]
# TYPE+STRU: TYPE (I, A N/T/C, E N/T/C IBM-1047, E N/T/C IBM-037) + 10 * STRU (F, R, P);
# MODE: S, B, C, Z at levels 0-9, Z at level 200.

TEXT = b"line one\nline two\n\xff\x00 three\r\n\n" * 4
for mode in range(14):
    for stru in range(3):
        rep = (mode * 3 + stru) % 10
        write("codec_round_trip", f"seed-{rep}-{stru}-{mode}",
              [rep + 10 * stru, mode, 16, mode, 2, 7, 3] + list(TEXT))

import zlib  # noqa: E402


def block(desc, data):
    return bytes([desc, len(data) >> 8, len(data) & 255]) + data


DECODE = {
    "stream-ascii": (1, 0, b"hello\r\nworld\r\n"),
    "stream-records": (10, 0, b"rec1\xff\x01rec\xff\xff2\xff\x03"),
    "block-marker": (0, 1, block(0x00, b"hello") + block(0x10, b"000005") + block(0x40, b"!")),
    "block-records": (10, 1, block(0x80, b"rec1") + block(0xC0, b"rec2")),
    "compressed": (1, 2, b"\x05hello" + b"\x83 " + b"\xc4x" + b"\x00\x40"),
    "deflate": (4, 9, zlib.compress(b"hello\nworld\n")),
}
for name, (a, b, wire) in DECODE.items():
    write("codec_decode", "seed-" + name, bytes([a, b, 0, 2, 5, 1]) + wire)
