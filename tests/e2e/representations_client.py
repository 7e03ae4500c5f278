#!/usr/bin/env python3
"""The end-to-end scenarios of RFC 959's representations, structures and modes (issue 17), one
per invocation, played with the reference client rfc959_client.py (written from the RFC and
docs/representations.md, not from Wharf's code).

Run by tests/tests/e2e_representations.rs, which starts the server, prepares files in its root
and in CLIENT_DIR, runs

    python3 representations_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR [EXTRA...]

and then checks the exit status, the `PASS SCENARIO` line, and the server's disk. A scenario
checks the replies and the bytes on the wire, and saves what it received in CLIENT_DIR. Every
socket operation has a timeout, so a broken server fails a scenario instead of hanging. The
scenarios are listed in SCENARIOS at the end.
"""

import hashlib
import os
import random
import re
import sys
import zlib

from rfc959_client import (
    Control,
    Format,
    ascii_to_wire,
    check,
    decode_pages,
    encode_block,
    encode_pages,
    file_events,
    retrieve,
    session,
    store,
)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def read(cdir, name):
    with open(os.path.join(cdir, name), "rb") as f:
        return f.read()


def write(cdir, name, data):
    with open(os.path.join(cdir, name), "wb") as f:
        f.write(data)


def expect_ok(t, what):
    check(t.ok(), f"{what}: {t}")


def expect_refused(t, what, classes=(4, 5)):
    check(
        t.final is not None and t.final.code // 100 in classes,
        f"{what}: want a {'xx or '.join(map(str, classes))}xx reply, got {t}",
    )


def check_marks_are_offsets(received, base=0, what="RETR"):
    """docs/representations.md: a server's marker is "the decimal stored-file offset at that
    point, counted from the start of the file even when the transfer itself began at a REST
    offset"; for TYPE I, STRU F that is the number of data bytes before it."""
    for text, pos in received.marks:
        check(
            text == str(base + pos),
            f"{what}: marker {text!r} came after {base + pos} bytes of the file",
        )


def scenario_type_a(port, user, password, cdir, form):
    """TYPE A with format N, T or C: STOR text.txt (LF locally, CRLF on the wire) as a_FORM.txt,
    RETR it: the wire is the CRLF text exactly, and the local result is the text."""
    text = read(cdir, "text.txt")
    ctl = session(port, user, password)
    fmt = Format("A", form)
    ctl.set_format(fmt)
    name = f"a_{form}.txt"
    expect_ok(store(ctl, f"STOR {name}", fmt.encode(text)), f"STOR {name}")
    t = retrieve(ctl, f"RETR {name}", fmt)
    expect_ok(t, f"RETR {name}")
    check(
        bytes(t.received.data) == ascii_to_wire(text),
        f"RETR {name}: the wire is not the text with CRLF line ends",
    )
    write(cdir, f"got_{form}.txt", fmt.local(t.received))


def scenario_type_e(port, user, password, cdir, codepage):
    """TYPE E in IBM-1047 (the default) or IBM-037 (SITE CODEPAGE IBM-037): STOR text.txt in
    EBCDIC as e.txt, RETR it: the same EBCDIC. For IBM-037, then SITE CODEPAGE IBM-1047 and RETR
    again: IBM-1047's codes. TYPE E T and E C are accepted too."""
    text = read(cdir, "text.txt").decode("utf-8")
    ctl = session(port, user, password)
    if codepage != "IBM-1047":
        ctl.expect(f"SITE CODEPAGE {codepage}", 200)
    for form in ("T", "C", "N"):
        ctl.expect(f"TYPE E {form}", 200)
    fmt = Format("E", codepage=codepage)
    ctl.set_format(fmt)
    wire = fmt.codepage.encode(text)
    expect_ok(store(ctl, "STOR e.txt", fmt.encode(text)), "STOR e.txt")
    t = retrieve(ctl, "RETR e.txt", fmt)
    expect_ok(t, "RETR e.txt")
    check(bytes(t.received.data) == wire, f"RETR e.txt: not the {codepage} bytes of the text")
    write(cdir, "got.txt", fmt.local(t.received).encode("utf-8"))
    if codepage != "IBM-1047":
        ctl.expect("SITE CODEPAGE IBM-1047", 200)
        other = Format("E", codepage="IBM-1047")
        t = retrieve(ctl, "RETR e.txt", other)
        expect_ok(t, "RETR e.txt after SITE CODEPAGE IBM-1047")
        check(
            bytes(t.received.data) == other.codepage.encode(text),
            "RETR e.txt: not the IBM-1047 bytes",
        )
        check(bytes(t.received.data) != wire, "IBM-1047 and IBM-037 gave the same bytes")


def scenario_type_e_unmappable(port, user, password, cdir):
    """RETR in TYPE E of euro.txt (a '€' after some lines) and of latin1.txt (bytes that are not
    UTF-8): each fails with a 4xx/5xx reply; for euro.txt the reply names U+20AC, and whatever
    arrived is a prefix of the EBCDIC of the text before the '€' (nothing replaced)."""
    ctl = session(port, user, password)
    fmt = Format("E")
    ctl.set_format(fmt)
    text = read(cdir, "euro.txt").decode("utf-8")
    before = fmt.codepage.encode(text.split("€")[0])
    t = retrieve(ctl, "RETR euro.txt", fmt)
    expect_refused(t, "RETR euro.txt in TYPE E")
    check("U+20AC" in str(t.final), f"the reply does not name the character U+20AC: {t.final}")
    got = bytes(t.received.data) if t.received else b""
    check(
        before.startswith(got),
        f"RETR euro.txt: {len(got)} bytes arrived that are not the text before the '€'",
    )
    print(f"euro.txt: {len(got)} of {len(before)} bytes before the '€' arrived; {t.final}")
    t = retrieve(ctl, "RETR latin1.txt", fmt)
    expect_refused(t, "RETR latin1.txt (not UTF-8) in TYPE E")
    print(f"latin1.txt: {t.final}")


TEXT_RECORDS = [
    b"first record",
    b"",
    b"  indented  ",
    "ünïcödé bytes pass".encode("utf-8"),
    b"last",
]


def scenario_stru_r_text(port, user, password, cdir, mode):
    """TYPE A, STRU R: STOR TEXT_RECORDS as rec.txt (stored one line each), RETR it: the same
    records; RETR lines.txt ("alpha\\nbeta\\n\\ngamma", no final LF): four records; STOR of a
    record holding an LF is refused."""
    ctl = session(port, user, password)
    fmt = Format("A", stru="R", mode=mode)
    ctl.set_format(fmt)
    expect_ok(store(ctl, "STOR rec.txt", fmt.encode(TEXT_RECORDS)), "STOR rec.txt")
    t = retrieve(ctl, "RETR rec.txt", fmt)
    expect_ok(t, "RETR rec.txt")
    check(fmt.local(t.received) == TEXT_RECORDS, f"RETR rec.txt: records {fmt.local(t.received)!r}")
    t = retrieve(ctl, "RETR lines.txt", fmt)
    expect_ok(t, "RETR lines.txt")
    want = [b"alpha", b"beta", b"", b"gamma"]
    check(fmt.local(t.received) == want, f"RETR lines.txt: records {fmt.local(t.received)!r}")
    t = store(ctl, "STOR bad.txt", fmt.encode([b"one\ntwo"]))
    expect_refused(t, "STOR of a record holding an LF")
    print(f"record with an LF: {t.final}")


def scenario_stru_r_binary(port, user, password, cdir, mode):
    """TYPE I, STRU R: STOR the records of records.hex as rec.bin, RETR it: the same records;
    RETR rec.bin in STRU F MODE S: the stored bytes, saved as stored_via_f.bin; RETR of
    malformed.bin (an undefined 0xFF code) in STRU R is refused."""
    records = [bytes.fromhex(l) for l in read(cdir, "records.hex").decode().split("\n")[:-1]]
    ctl = session(port, user, password)
    fmt = Format("I", stru="R", mode=mode)
    ctl.set_format(fmt)
    expect_ok(store(ctl, "STOR rec.bin", fmt.encode(records)), "STOR rec.bin")
    t = retrieve(ctl, "RETR rec.bin", fmt)
    expect_ok(t, "RETR rec.bin")
    check(fmt.local(t.received) == records, "RETR rec.bin: not the records sent")
    t = retrieve(ctl, "RETR malformed.bin", fmt)
    expect_refused(t, "RETR in STRU R of a stored file with an undefined 0xFF code")
    print(f"malformed.bin: {t}")
    plain = Format("I")
    ctl.set_format(plain)
    t = retrieve(ctl, "RETR rec.bin", plain)
    expect_ok(t, "RETR rec.bin in STRU F")
    write(cdir, "stored_via_f.bin", bytes(t.received.data))


def scenario_stru_p(port, user, password, cdir, mode):
    """TYPE I, STRU P: STOR page_src.bin in pages of 200 bytes as up.bin; RETR down.bin (the
    same bytes): simple pages of 255 bytes numbered from 0, then the last page, exactly."""
    src = read(cdir, "page_src.bin")
    ctl = session(port, user, password)
    fmt = Format("I", stru="P", mode=mode)
    ctl.set_format(fmt)
    expect_ok(
        store(ctl, "STOR up.bin", fmt.encode(src, page_size=200)), "STOR up.bin in pages of 200"
    )
    t = retrieve(ctl, "RETR down.bin", fmt)
    expect_ok(t, "RETR down.bin")
    check(
        bytes(t.received.data) == encode_pages(src, 255),
        "RETR down.bin: not pages of 255 bytes numbered from 0",
    )
    check(fmt.local(t.received) == src, "RETR down.bin: not the file")


def scenario_stru_p_limit(port, user, password, cdir):
    """TYPE I, STRU P: RETR of 65,280 bytes: 256 pages, indexes 0-255; RETR of 65,281 bytes is
    refused (a one-byte index numbers 256 pages of 255 bytes) and no complete transfer came."""
    ctl = session(port, user, password)
    fmt = Format("I", stru="P")
    ctl.set_format(fmt)
    full = read(cdir, "p65280.bin")
    t = retrieve(ctl, "RETR p65280.bin", fmt)
    expect_ok(t, "RETR p65280.bin")
    pages, last = decode_pages(t.received.data)
    check(
        last and [p[0] for p in pages] == list(range(256)),
        "RETR p65280.bin: not pages 0-255 and the last page",
    )
    check(b"".join(p[2] for p in pages) == full, "RETR p65280.bin: not the file")
    t = retrieve(ctl, "RETR p65281.bin", fmt)
    expect_refused(t, "RETR p65281.bin in STRU P")
    got = bytes(t.received.data) if t.received else b""
    check(not got.endswith(bytes([4, 0, 0, 0])), "RETR p65281.bin: the pages ended as if complete")
    print(f"p65281.bin: {t.final}")


def scenario_mode_round_trip(port, user, password, cdir, mode, markers="markers"):
    """TYPE I, MODE B or C: STOR big.bin as up.bin, RETR down.bin (the same bytes): the file, with
    its restart markers naming the offsets they fell at (a server at the default 1 MiB interval
    sends one per MiB; `no-markers` for a server that sends none); saved as got.bin."""
    big = read(cdir, "big.bin")
    ctl = session(port, user, password)
    fmt = Format("I", mode=mode)
    ctl.set_format(fmt)
    t = store(ctl, "STOR up.bin", fmt.encode(big))
    expect_ok(t, "STOR up.bin")
    t = retrieve(ctl, "RETR down.bin", fmt)
    expect_ok(t, "RETR down.bin")
    check_marks_are_offsets(t.received)
    if markers == "markers":
        # The server's default restart_marker_interval: a marker after every MiB of the file.
        want = len(big) // (1 << 20) - 1
        check(
            len(t.received.marks) >= want,
            f"RETR down.bin in MODE {mode}: {len(t.received.marks)} restart markers, want {want}+",
        )
    print(
        f"MODE {mode}: {len(big)} bytes as {len(t.wire)} on the wire,"
        f" {len(t.received.marks)} restart markers"
    )
    check(sha256(bytes(t.received.data)) == sha256(big), "RETR down.bin: SHA-256 differs")
    write(cdir, "got.bin", bytes(t.received.data))


def scenario_mode_b_no_eof(port, user, password, cdir):
    """TYPE I, MODE B: STOR cut.bin, 300,000 bytes of blocks and no EOF block, then the close:
    refused with a 4xx reply."""
    ctl = session(port, user, password)
    fmt = Format("I", mode="B")
    ctl.set_format(fmt)
    data = random.Random(1).randbytes(300_000)
    t = store(ctl, "STOR cut.bin", encode_block(file_events(data, bytes, end_of_file=False)))
    expect_refused(t, "STOR without the EOF block", classes=(4,))
    print(f"no EOF block: {t.final}")


def scenario_restart_retr(port, user, password, cdir):
    """TYPE I, MODE B: RETR big.bin until three restart markers came, cut the data connection;
    REST <last marker> + RETR; the data before that marker and the second transfer together are
    the file (SHA-256). Saved as got.bin."""
    big = read(cdir, "big.bin")
    ctl = session(port, user, password)
    fmt = Format("I", mode="B")
    ctl.set_format(fmt)
    t1 = retrieve(ctl, "RETR big.bin", fmt, stop=lambda r: len(r.marks) >= 3, rcvbuf=64 * 1024)
    check(t1.cut and t1.error is None, f"first RETR ended before three restart markers came: {t1}")
    check(t1.final.code // 100 == 4, f"first RETR after the cut: want 4xx, got {t1.final}")
    check_marks_are_offsets(t1.received, what="first RETR")
    marker, pos = t1.received.marks[-1]
    print(f"cut after {len(t1.received.data)} bytes; markers {t1.received.marks}; {t1.final}")
    t2 = retrieve(ctl, "RETR big.bin", fmt, rest=marker)
    expect_ok(t2, f"RETR after REST {marker}")
    check_marks_are_offsets(t2.received, base=pos, what="resumed RETR")
    glued = bytes(t1.received.data[:pos]) + bytes(t2.received.data)
    print(
        f"resumed at {marker}: {len(t2.received.data)} more bytes, {len(t2.received.marks)} markers"
    )
    check(sha256(glued) == sha256(big), "the pieces glued together differ from the file (SHA-256)")
    write(cdir, "got.bin", glued)


def scenario_restart_stor(port, user, password, cdir):
    """TYPE I, MODE B: STOR big.bin as up.bin with the client's markers every 256 KiB; after four
    markers and 100,000 more bytes, wait for the 110 replies and cut the connection; then, in a
    new session, REST <the last server marker> + STOR of the rest from the matching client
    offset."""
    big = read(cdir, "big.bin")
    every = 256 * 1024
    ctl = session(port, user, password)
    fmt = Format("I", mode="B")
    ctl.set_format(fmt)
    first = encode_block(
        file_events(big, bytes, marks_every=every, stop=4 * every + 100_000, end_of_file=False)
    )
    t1 = store(ctl, "STOR up.bin", first, wait_marks=4, ending="cut")
    print(f"first STOR: sent {t1.sent} bytes; 110 replies {t1.marks}; {t1.final}")
    check(len(t1.marks) >= 2, f"fewer than two 110 MARK replies before the cut: {t1}")
    check(t1.final.code // 100 == 4, f"first STOR after the cut: want 4xx, got {t1.final}")
    for client, server in t1.marks:
        # "Everything the client sent before the marker is in the file at that point": in TYPE I
        # the stored offset is the client's own data offset.
        check(
            re.fullmatch(r"C\d+", client) and int(client[1:]) % every == 0,
            f"110 names a marker never sent: {client}",
        )
        check(
            server == client[1:],
            f"110 MARK {client} = {server}: want the stored offset {client[1:]}",
        )
    client, server = t1.marks[-1]
    # The client comes back as a client that lost its connection does: a new session.
    ctl.send("QUIT")
    ctl.sock.close()
    ctl = session(port, user, password)
    ctl.set_format(fmt)
    rest = encode_block(file_events(big, bytes, marks_every=every, start=int(client[1:])))
    t2 = store(ctl, "STOR up.bin", rest, rest=server)
    print(
        f"resumed STOR at REST {server}: sent {t2.sent} bytes; 110 replies {t2.marks}; {t2.final}"
    )
    expect_ok(t2, f"STOR after REST {server}")
    for client, server in t2.marks:
        check(server == client[1:], f"110 MARK {client} = {server} in the resumed STOR")


def scenario_mode_z_download(port, user, password, cdir):
    """MODE Z: RETR text.txt in TYPE I at OPTS MODE Z LEVEL 1 and 9, read by Python's zlib: the
    file; level 9 smaller on the wire than level 1; in TYPE A: the text with CRLF."""
    text = read(cdir, "text.txt")
    ctl = session(port, user, password)
    sizes = {}
    for level in (1, 9):
        fmt = Format("I", mode="Z", level=level)
        ctl.set_format(fmt)
        t = retrieve(ctl, "RETR text.txt", fmt)
        expect_ok(t, f"RETR text.txt at level {level}")
        check(bytes(t.received.data) == text, f"level {level}: zlib gave other bytes than the file")
        sizes[level] = len(t.wire)
    print(f"{len(text)} bytes: level 1 {sizes[1]} on the wire, level 9 {sizes[9]}")
    check(sizes[9] < sizes[1], f"level 9 is not smaller than level 1: {sizes}")
    fmt = Format("A", mode="Z")
    ctl.set_format(fmt)
    t = retrieve(ctl, "RETR text.txt", fmt)
    expect_ok(t, "RETR text.txt in TYPE A")
    check(bytes(t.received.data) == ascii_to_wire(text), "TYPE A, MODE Z: not the text with CRLF")


def scenario_mode_z_upload(port, user, password, cdir):
    """MODE Z, TYPE I: STOR text.txt compressed by Python's zlib (level 6) as zup.txt."""
    text = read(cdir, "text.txt")
    ctl = session(port, user, password)
    fmt = Format("I", mode="Z")
    ctl.set_format(fmt)
    z = zlib.compressobj(6)
    stream = z.compress(text) + z.flush()
    t = store(ctl, "STOR zup.txt", [stream[i : i + 65536] for i in range(0, len(stream), 65536)])
    expect_ok(t, "STOR zup.txt")
    print(f"{len(text)} bytes sent as {len(stream)}")


def scenario_mode_z_bad_upload(port, user, password, cdir):
    """MODE Z, TYPE I: a zlib stream without its last 6 bytes (ztrunc.txt) and one with a wrong
    Adler-32 (zbad.txt) are both refused."""
    text = read(cdir, "text.txt")
    ctl = session(port, user, password)
    ctl.set_format(Format("I", mode="Z"))
    stream = zlib.compress(text, 6)
    t = store(ctl, "STOR ztrunc.txt", [stream[:-6]])
    expect_refused(t, "STOR of a truncated zlib stream")
    print(f"truncated: {t.final}")
    t = store(ctl, "STOR zbad.txt", [stream[:-1] + bytes([stream[-1] ^ 1])])
    expect_refused(t, "STOR of a zlib stream with a wrong Adler-32")
    print(f"wrong Adler-32: {t.final}")


def scenario_feat_lang(port, user, password, cdir):
    """FEAT lists MODE Z, LANG with EN*, MFMT and a HASH line (RFC 2389: one feature per line,
    after a space); LANG EN is 200 (RFC 2640)."""
    ctl = session(port, user, password)
    r = ctl.expect("FEAT", 211)
    feats = [l[1:] for l in r.lines[1:-1] if l.startswith(" ")]
    print("features:", feats)
    check("MODE Z" in feats, "FEAT does not list MODE Z")
    lang = [f for f in feats if f.split(" ")[0] == "LANG"]
    check(lang and "EN*" in lang[0][5:].split(";"), f"FEAT has no 'LANG EN*' line: {lang}")
    check("MFMT" in feats, "FEAT does not list MFMT")
    check(any(f == "HASH" or f.startswith("HASH ") for f in feats), "FEAT has no HASH line")
    ctl.expect("LANG EN", 200)


def scenario_listings(port, user, password, cdir, *names):
    """NLST in TYPE E arrives in IBM-1047, names separated by NL (§4.1.3: "separated by <CRLF> or
    <NL>"; §3.4: <NL> for EBCDIC); LIST in MODE Z arrives compressed, lines with CRLF."""
    ctl = session(port, user, password)
    fmt = Format("E")
    ctl.set_format(fmt)
    t = retrieve(ctl, "NLST", fmt)
    expect_ok(t, "NLST in TYPE E")
    listed = fmt.codepage.decode(t.received.data)
    check("\r" not in listed, f"NLST in TYPE E: CR characters in {listed!r}")
    got = sorted(n for n in listed.split("\n") if n)
    check(got == sorted(names), f"NLST in TYPE E: names {got}, want {sorted(names)}")
    fmt = Format("A", mode="Z")
    ctl.set_format(fmt)
    t = retrieve(ctl, "LIST", fmt)
    expect_ok(t, "LIST in MODE Z")
    listing = bytes(t.received.data)
    # RFC 1950: CMF's low four bits are 8 (deflate), and CMF*256 + FLG is a multiple of 31.
    check(
        t.wire[0] & 0x0F == 8 and (t.wire[0] * 256 + t.wire[1]) % 31 == 0,
        "LIST in MODE Z: no zlib header",
    )
    lines = listing.split(b"\r\n")
    check(
        lines[-1] == b"" and all(b"\n" not in l for l in lines),
        f"LIST: not CRLF lines: {listing!r}",
    )
    for n in names:
        check(
            any(l.endswith(b" " + n.encode()) for l in lines), f"LIST in MODE Z does not list {n}"
        )


SCENARIOS = {
    "type_a": scenario_type_a,
    "type_e": scenario_type_e,
    "type_e_unmappable": scenario_type_e_unmappable,
    "stru_r_text": scenario_stru_r_text,
    "stru_r_binary": scenario_stru_r_binary,
    "stru_p": scenario_stru_p,
    "stru_p_limit": scenario_stru_p_limit,
    "mode_round_trip": scenario_mode_round_trip,
    "mode_b_no_eof": scenario_mode_b_no_eof,
    "restart_retr": scenario_restart_retr,
    "restart_stor": scenario_restart_stor,
    "mode_z_download": scenario_mode_z_download,
    "mode_z_upload": scenario_mode_z_upload,
    "mode_z_bad_upload": scenario_mode_z_bad_upload,
    "feat_lang": scenario_feat_lang,
    "listings": scenario_listings,
}


def main(argv):
    name, port, user, password, cdir, *extra = argv[1:]
    try:
        SCENARIOS[name](int(port), user, password, cdir, *extra)
    except BaseException:
        for log in Control.transcripts:
            print("---- control connection ----", file=sys.stderr)
            print("\n".join(log[-40:]), file=sys.stderr)
        raise
    print(f"PASS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
