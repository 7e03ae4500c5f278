"""Checksums against the real server, checked with Python's hashlib and zlib: HASH in every
algorithm OPTS HASH offers (draft-bryan-ftpext-hash), a RANG range (draft-bryan-ftp-range),
the older XCRC/XMD5/XSHA1/XSHA256/XSHA512, and ABOR while a HASH of a large file runs.

Usage: python3 checksum_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR [EXTRA...]
Prints PASS SCENARIO on success."""

import hashlib
import socket
import sys
import time
import zlib
from ftplib import FTP, error_perm

from ftputil import check


def connect(port, user, password):
    ftp = FTP()
    ftp.connect("127.0.0.1", port, timeout=60)
    ftp.login(user, password)
    return ftp


def scenario_algorithms(ftp, data_path):
    data = open(data_path, "rb").read()
    check(ftp.sendcmd("OPTS HASH") == "200 SHA-256", "SHA-256 is the default")
    feat = ftp.sendcmd("FEAT")
    check(" HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32" in feat, f"FEAT HASH line: {feat}")
    expected = {
        "SHA-256": hashlib.sha256(data).hexdigest(),
        "SHA-512": hashlib.sha512(data).hexdigest(),
        "SHA-1": hashlib.sha1(data).hexdigest(),
        "MD5": hashlib.md5(data).hexdigest(),
        "CRC32": "%08x" % zlib.crc32(data),
    }
    for name, want in expected.items():
        check(ftp.sendcmd("OPTS HASH " + name) == "200 " + name, f"OPTS HASH {name}")
        reply = ftp.sendcmd("HASH data.bin")
        words = reply.split(" ")
        check(words[:3] == ["213", name, f"0-{len(data) - 1}"], f"HASH reply: {reply}")
        check(words[3] == want, f"{name}: server {words[3]}, hashlib {want}")
        check(words[4] == "/data.bin", f"HASH names the file: {reply}")
    # A range: both ends included; used up by the HASH that follows.
    ftp.sendcmd("OPTS HASH SHA-1")
    check(ftp.sendcmd("RANG 1000 1999").startswith("350"), "RANG")
    words = ftp.sendcmd("HASH data.bin").split(" ")
    check(words[2] == "1000-1999", f"range {words[2]}")
    check(words[3] == hashlib.sha1(data[1000:2000]).hexdigest(), "the range's SHA-1")
    words = ftp.sendcmd("HASH data.bin").split(" ")
    check(words[2] == f"0-{len(data) - 1}", "RANG applies to one HASH")
    # The older commands: 250 and the checksum; a range is start and end (excluded).
    check(ftp.sendcmd("XCRC data.bin") == "250 %08x" % zlib.crc32(data), "XCRC")
    check(ftp.sendcmd("XMD5 data.bin") == "250 " + hashlib.md5(data).hexdigest(), "XMD5")
    check(ftp.sendcmd("XSHA1 data.bin") == "250 " + hashlib.sha1(data).hexdigest(), "XSHA1")
    check(
        ftp.sendcmd('XSHA256 "data.bin" 10 20') == "250 " + hashlib.sha256(data[10:20]).hexdigest(),
        "XSHA256 with a range",
    )
    check(
        ftp.sendcmd("XSHA512 data.bin 5") == "250 " + hashlib.sha512(data[5:]).hexdigest(),
        "XSHA512 from an offset",
    )
    try:
        ftp.sendcmd("HASH nothing-here.bin")
        check(False, "HASH of a missing file must fail")
    except error_perm as e:
        check(str(e).startswith("550"), f"missing file: {e}")


def scenario_abort(ftp, big_name):
    """ABOR while a HASH of a large file runs: 426 for the HASH, 226 for the ABOR, at once;
    the session goes on."""
    ftp.sendcmd("OPTS HASH SHA-512")
    sock = ftp.sock
    sock.sendall(f"HASH {big_name}\r\n".encode())
    time.sleep(0.5)
    t0 = time.monotonic()
    sock.sendall(b"ABOR\r\n")
    first = ftp.getline()
    second = ftp.getline()
    took = time.monotonic() - t0
    check(first.startswith("426"), f"the HASH ends with 426: {first}")
    check(second.startswith("226"), f"then ABOR's 226: {second}")
    check(took < 5, f"the abort took {took:.1f} s")
    check(ftp.sendcmd("NOOP").startswith("200"), "the session goes on")


def scenario_busy(port, user, password, big_names):
    """As many HASHes as the server allows at once run; one more is 450 (busy)."""
    running = []
    for name in big_names:
        f = connect(port, user, password)
        f.sendcmd("OPTS HASH SHA-512")
        f.sock.sendall(f"HASH {name}\r\n".encode())
        running.append(f)
    time.sleep(0.5)
    extra = connect(port, user, password)
    try:
        extra.sendcmd(f"HASH {big_names[0]}")
        check(False, "one HASH more than the server allows must be refused")
    except Exception as e:  # ftplib raises error_temp for 4xx
        check(str(e).startswith("450"), f"busy: {e}")
    for f in running:
        f.sock.sendall(b"ABOR\r\n")
        check(f.getline().startswith("426"), "aborted")
        check(f.getline().startswith("226"), "ABOR done")
    # The places are free again.
    check(extra.sendcmd("XCRC small.bin").startswith("250"), "a checksum after the others ended")


def main():
    name, port, user, password, client_dir = sys.argv[1:6]
    extra = sys.argv[6:]
    port = int(port)
    socket.setdefaulttimeout(60)
    ftp = connect(port, user, password)
    if name == "algorithms":
        scenario_algorithms(ftp, extra[0])
    elif name == "abort":
        scenario_abort(ftp, extra[0])
    elif name == "busy":
        scenario_busy(port, user, password, extra)
    else:
        print(f"unknown scenario {name}")
        return 2
    ftp.close()
    print(f"PASS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
