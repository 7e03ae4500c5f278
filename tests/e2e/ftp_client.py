#!/usr/bin/env python3
"""Python ftplib scenarios against a running Wharf server, one per invocation.

Run by the Rust tests in tests/tests/e2e_ftplib.rs, which start the server, prepare the files
each scenario expects (in the server's root and in the client folder), run

    python3 ftp_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR

and then check the exit status, the `PASS SCENARIO` line, and what ended up on the server's disk.
Every socket operation has a timeout, so a broken server fails a scenario instead of hanging it.
"""

import ftplib
import hashlib
import io
import os
import sys
import time

from ftputil import check, expect_error, sha256

HOST = "127.0.0.1"
TIMEOUT = 30


def retr_bytes(ftp, cmd, rest=None):
    chunks = []
    resp = ftp.retrbinary(cmd, chunks.append, rest=rest)
    check(resp.startswith("226"), f"{cmd}: final reply {resp!r}")
    return b"".join(chunks)


def read_all(conn, limit=1 << 30):
    chunks, total = [], 0
    while total < limit:
        b = conn.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def connect(port, user, password):
    ftp = ftplib.FTP()
    welcome = ftp.connect(HOST, port, timeout=TIMEOUT)
    check(welcome.startswith("220"), f"greeting {welcome!r}")
    resp = ftp.login(user, password)
    check(resp.startswith("230"), f"login: {resp!r}")
    return ftp


# ----- scenarios --------------------------------------------------------------------------------


def scenario_listings(ftp, d, port, user, password):
    # Root prepared by the Rust test: hello.txt (12 bytes), docs/a.bin (1000 bytes),
    # "naïve file.txt" (5 bytes).
    names = set(ftp.nlst())
    check(names == {"hello.txt", "docs", "naïve file.txt"}, f"NLST: {names}")

    lines = []
    ftp.retrlines("LIST", lines.append)
    by_name = {}
    for line in lines:
        fields = line.split(None, 8)
        check(len(fields) == 9, f"LIST line is not in ls -l form: {line!r}")
        by_name[fields[8]] = fields
    check(set(by_name) == names, f"LIST names {set(by_name)} != {names}")
    check(by_name["docs"][0].startswith("d"), f"docs not a folder in LIST: {by_name['docs']}")
    check(by_name["hello.txt"][0].startswith("-"), f"hello.txt: {by_name['hello.txt']}")
    check(by_name["hello.txt"][4] == "12", f"hello.txt size in LIST: {by_name['hello.txt']}")
    check(by_name["naïve file.txt"][4] == "5", f"UTF-8 name in LIST: {by_name}")

    facts = {name: f for name, f in ftp.mlsd() if f.get("type") not in ("cdir", "pdir")}
    check(set(facts) == names, f"MLSD names {set(facts)} != {names}")
    check(facts["hello.txt"]["type"] == "file", f"MLSD hello.txt: {facts['hello.txt']}")
    check(facts["hello.txt"]["size"] == "12", f"MLSD hello.txt: {facts['hello.txt']}")
    check(facts["docs"]["type"] == "dir", f"MLSD docs: {facts['docs']}")
    modify = facts["hello.txt"].get("modify", "")
    check(len(modify) >= 14 and modify[:14].isdigit(), f"MLSD modify fact: {modify!r}")

    sub = [n.rsplit("/", 1)[-1] for n in ftp.nlst("docs")]
    check(sub == ["a.bin"], f"NLST docs: {sub}")
    check(ftp.cwd("docs").startswith("250"), "CWD docs")
    check(ftp.pwd() == "/docs", f"PWD after CWD docs: {ftp.pwd()!r}")
    check(ftp.nlst() == ["a.bin"], f"NLST inside docs: {ftp.nlst()}")
    check(len(retr_bytes(ftp, "RETR a.bin")) == 1000, "RETR a.bin from inside docs")
    ftp.cwd("..")
    check(ftp.pwd() == "/", f"PWD after CWD ..: {ftp.pwd()!r}")
    check(retr_bytes(ftp, "RETR naïve file.txt") == b"na\xc3\xafv", "RETR of a UTF-8 name")
    expect_error("550", ftp.cwd, "no-such-folder")

    # A wrong password is refused with 530; the right one still works afterwards.
    other = ftplib.FTP()
    other.connect(HOST, port, timeout=TIMEOUT)
    expect_error("530", other.login, user, password + "-wrong")
    check(other.login(user, password).startswith("230"), "login after a failed attempt")
    other.quit()


def scenario_big(ftp, d, port, user, password):
    with open(os.path.join(d, "big.bin"), "rb") as f:
        original = f.read()
    with open(os.path.join(d, "big.bin"), "rb") as f:
        resp = ftp.storbinary("STOR big.bin", f, blocksize=1 << 16)
    check(resp.startswith("226"), f"STOR: {resp!r}")
    ftp.voidcmd("TYPE I")
    check(ftp.size("big.bin") == len(original), f"SIZE big.bin: {ftp.size('big.bin')}")
    back = retr_bytes(ftp, "RETR big.bin")
    print(f"sent {len(original)} bytes sha256 {sha256(original)}")
    print(f"got  {len(back)} bytes sha256 {sha256(back)}")
    check(sha256(back) == sha256(original), "RETR of the 20 MB file differs from what was stored")


def scenario_appe(ftp, d, port, user, password):
    part1 = open(os.path.join(d, "part1.bin"), "rb").read()
    part2 = open(os.path.join(d, "part2.bin"), "rb").read()
    ftp.storbinary("STOR appended.bin", io.BytesIO(part1))
    resp = ftp.storbinary("APPE appended.bin", io.BytesIO(part2))
    check(resp.startswith("226"), f"APPE: {resp!r}")
    check(retr_bytes(ftp, "RETR appended.bin") == part1 + part2, "APPE did not append")
    # APPE to a name that does not exist creates it.
    ftp.storbinary("APPE fresh.bin", io.BytesIO(part2))
    check(retr_bytes(ftp, "RETR fresh.bin") == part2, "APPE to a new file")


def scenario_rest_download(ftp, d, port, user, password):
    original = open(os.path.join(d, "resume.bin"), "rb").read()
    got = retr_bytes(ftp, "RETR resume.bin", rest=300000)
    check(got == original[300000:], f"RETR with REST 300000 gave {len(got)} bytes")
    # A resumed download glued to the first part gives the whole file.
    first = original[:300000]
    check(first + got == original, "resumed download does not rebuild the file")
    # REST lives until the transfer it is for (as in vsftpd, pure-ftpd, ProFTPD): REST, NOOP,
    # TYPE, then RETR (ftplib sends PASV/EPSV in between) resumes; the RETR uses it up.
    check(ftp.sendcmd("REST 1000").startswith("350"), "REST 1000")
    check(ftp.sendcmd("NOOP").startswith("200"), "NOOP")
    check(ftp.sendcmd("TYPE I").startswith("200"), "TYPE I")
    got = retr_bytes(ftp, "RETR resume.bin")
    check(got == original[1000:], f"REST 1000, NOOP, TYPE I, RETR gave {len(got)} bytes")
    check(retr_bytes(ftp, "RETR resume.bin") == original, "the RETR used the REST up")


def scenario_rest_upload(ftp, d, port, user, password):
    original = open(os.path.join(d, "upload.bin"), "rb").read()
    half = len(original) // 2 + 123
    ftp.storbinary("STOR up.bin", io.BytesIO(original[:half]))
    ftp.voidcmd("TYPE I")
    have = ftp.size("up.bin")
    check(have == half, f"SIZE after the interrupted upload: {have} != {half}")
    rest = io.BytesIO(original)
    rest.seek(have)
    resp = ftp.storbinary("STOR up.bin", rest, rest=have)
    check(resp.startswith("226"), f"resumed STOR: {resp!r}")
    check(ftp.size("up.bin") == len(original), f"SIZE after resume: {ftp.size('up.bin')}")
    check(retr_bytes(ftp, "RETR up.bin") == original, "resumed upload differs")


def scenario_fileops(ftp, d, port, user, password):
    check(ftp.mkd("newdir") == "/newdir", "MKD newdir")
    check(ftp.mkd("newdir/sub") == "/newdir/sub", "MKD newdir/sub")
    expect_error("550", ftp.mkd, "newdir")
    ftp.storbinary("STOR newdir/sub/f.txt", io.BytesIO(b"moving file\n"))
    check(ftp.rename("newdir/sub/f.txt", "newdir/g.txt").startswith("250"), "RNFR/RNTO")
    check(sorted(n.rsplit("/", 1)[-1] for n in ftp.nlst("newdir")) == ["g.txt", "sub"],
          f"after rename: {ftp.nlst('newdir')}")
    check(retr_bytes(ftp, "RETR newdir/g.txt") == b"moving file\n", "renamed file contents")
    expect_error("550", ftp.rmd, "newdir")  # not empty
    check(ftp.rmd("newdir/sub").startswith("250"), "RMD newdir/sub")
    check(ftp.delete("newdir/g.txt").startswith("250"), "DELE newdir/g.txt")
    check(ftp.rmd("newdir").startswith("250"), "RMD newdir")
    check("newdir" not in ftp.nlst(), f"newdir still listed: {ftp.nlst()}")
    expect_error("550", ftp.delete, "no-such-file")
    expect_error("550", ftp.rename, "no-such-file", "x")
    expect_error("550", ftp.rmd, "no-such-folder")
    # RNTO without RNFR is out of sequence.
    expect_error("503", ftp.sendcmd, "RNTO x")
    # Left for the Rust side to check on disk.
    ftp.rename("keep.txt", "kept.txt")
    ftp.mkd("made")
    ftp.mkd("with space")


def scenario_size_mdtm(ftp, d, port, user, password):
    ftp.voidcmd("TYPE I")
    check(ftp.size("dated.bin") == 4321, f"SIZE dated.bin: {ftp.size('dated.bin')}")
    resp = ftp.sendcmd("MDTM dated.bin")
    check(resp == "213 20210304050607", f"MDTM dated.bin: {resp!r}")
    expect_error("550", ftp.sendcmd, "SIZE no-such-file")
    expect_error("550", ftp.sendcmd, "MDTM no-such-file")
    expect_error("550", ftp.sendcmd, "SIZE folder")


def scenario_type_a(ftp, d, port, user, password):
    # ftplib's storlines sends TYPE A and CRLF line ends; the file on disk must have LF.
    resp = ftp.storlines("STOR lines.txt", io.BytesIO(b"alpha\nbeta\ngamma\n"))
    check(resp.startswith("226"), f"STOR in TYPE A: {resp!r}")
    # A client that sends bare LF in TYPE A: the file keeps LF.
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("STOR lf.txt")
    conn.sendall(b"one\ntwo\n")
    conn.close()
    check(ftp.voidresp().startswith("226"), "STOR lf.txt")
    # Download in TYPE A: CRLF on the wire.
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("RETR unix.txt")
    wire = read_all(conn)
    conn.close()
    check(ftp.voidresp().startswith("226"), "RETR unix.txt in TYPE A")
    check(wire == b"x\r\ny\r\nz\r\n", f"TYPE A download on the wire: {wire!r}")
    lines = []
    ftp.retrlines("RETR unix.txt", lines.append)
    check(lines == ["x", "y", "z"], f"retrlines: {lines}")
    # TYPE I gives the bytes as stored.
    check(retr_bytes(ftp, "RETR unix.txt") == b"x\ny\nz\n", "TYPE I download")
    check(retr_bytes(ftp, "RETR lines.txt") == b"alpha\nbeta\ngamma\n", "TYPE I of lines.txt")


def scenario_abort(ftp, d, port, user, password):
    original = open(os.path.join(d, "huge.bin"), "rb").read()
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR huge.bin")
    got = 0
    while got < 1 << 20:
        b = conn.recv(1 << 16)
        check(b, "data connection closed before 1 MB")
        got += len(b)
    # The client stops reading: the server's send is blocked on a full socket buffer while it
    # must still notice the ABOR (sent with Telnet IP/Synch as urgent data by ftplib).
    started = time.monotonic()
    resp = ftp.abort()
    took = time.monotonic() - started
    print(f"abort() answered {resp!r} after {took:.2f} s")
    check(resp.startswith("426"), f"first reply to ABOR during RETR: {resp!r}")
    conn.close()
    second = ftp.getresp()
    check(second[:3] in ("225", "226"), f"second reply to ABOR: {second!r}")
    resp = ftp.sendcmd("NOOP")
    check(resp.startswith("200"), f"NOOP after ABOR: {resp!r} (replies out of step?)")
    check(ftp.pwd() == "/", "PWD after ABOR")
    back = retr_bytes(ftp, "RETR huge.bin")
    check(sha256(back) == sha256(original), f"second RETR after ABOR: {len(back)} bytes differ")


def scenario_active(ftp, d, port, user, password):
    ftp.set_pasv(False)
    data = open(os.path.join(d, "active.bin"), "rb").read()
    resp = ftp.storbinary("STOR active.bin", io.BytesIO(data))
    check(resp.startswith("226"), f"STOR over PORT: {resp!r}")
    check(retr_bytes(ftp, "RETR active.bin") == data, "RETR over PORT")
    check("active.bin" in ftp.nlst(), "NLST over PORT")


SCENARIOS = {
    name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")
}


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in SCENARIOS:
        print(f"usage: {sys.argv[0]} {{{','.join(SCENARIOS)}}} PORT USER PASSWORD CLIENT_DIR",
              file=sys.stderr)
        return 2
    name, port, user, password, d = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
    ftp = connect(port, user, password)
    SCENARIOS[name](ftp, d, port, user, password)
    resp = ftp.quit()
    check(resp.startswith("221"), f"QUIT: {resp!r}")
    print(f"PASS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
