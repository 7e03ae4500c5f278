#!/usr/bin/env python3
"""Upload scenarios for the data path (Python ftplib), one per invocation.

Run by tests/tests/e2e_transfers.rs, which starts the server, runs

    python3 transfer_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR [CAFILE]

and then checks the exit status, the `PASS SCENARIO` line, and the server's disk.
Every socket operation has a timeout, so a broken server fails a scenario instead of hanging.

Scenarios:
- tls_store_modes: over FTPS (PROT P, data connections resuming the control connection's TLS
  session), STOR over a longer file, STOR again, APPE, REST + STOR; each result read back
  with RETR and compared by SHA-256. CLIENT_DIR holds a.bin, b.bin, c.bin.
- reset_upload: a plain STOR whose data connection is reset (SO_LINGER 0) after 1 MiB: the
  reply is 4xx, the session goes on, and a following STOR completes.
"""

import ftplib
import hashlib
import os
import socket
import ssl
import struct
import sys

from ftputil import ReuseFTP_TLS, check, sha256

HOST = "127.0.0.1"
TIMEOUT = 30


def retr(ftp, name):
    out = bytearray()
    ftp.retrbinary(f"RETR {name}", out.extend)
    return bytes(out)


def stor(ftp, cmd, data, rest=None):
    import io

    return ftp.storbinary(cmd, io.BytesIO(data), blocksize=256 * 1024, rest=rest)


def scenario_tls_store_modes(port, user, password, cdir, cafile):
    a = open(os.path.join(cdir, "a.bin"), "rb").read()
    b = open(os.path.join(cdir, "b.bin"), "rb").read()
    c = open(os.path.join(cdir, "c.bin"), "rb").read()
    ctx = ssl.create_default_context(cafile=cafile)
    ftp = ReuseFTP_TLS(context=ctx, timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    ftp.voidcmd("TYPE I")
    # replace.bin exists on the server, longer than a.bin: the result is a.bin exactly.
    resp = stor(ftp, "STOR replace.bin", a)
    check(resp.startswith("226"), f"STOR over a longer file: {resp!r}")
    check(sha256(retr(ftp, "replace.bin")) == sha256(a), "replace.bin after STOR differs")
    resp = stor(ftp, "STOR replace.bin", b)
    check(resp.startswith("226"), f"second STOR: {resp!r}")
    check(sha256(retr(ftp, "replace.bin")) == sha256(b), "replace.bin after the second STOR")
    resp = stor(ftp, "APPE replace.bin", c)
    check(resp.startswith("226"), f"APPE: {resp!r}")
    check(sha256(retr(ftp, "replace.bin")) == sha256(b + c), "replace.bin after APPE")
    # REST + STOR: keep the first 1000 bytes, write a.bin after them.
    resp = stor(ftp, "STOR replace.bin", a, rest=1000)
    check(resp.startswith("226"), f"REST + STOR: {resp!r}")
    check(
        sha256(retr(ftp, "replace.bin")) == sha256(b[:1000] + a),
        "replace.bin after REST + STOR",
    )
    ftp.quit()


def scenario_reset_upload(port, user, password, cdir, cafile=None):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR reset.bin")
    conn.sendall(os.urandom(1 << 20))
    # SO_LINGER with a zero timeout: close() sends a reset instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    try:
        resp = ftp.voidresp()
        raise AssertionError(f"a reset upload was answered {resp!r}")
    except ftplib.error_temp as e:
        check(str(e).startswith("4"), f"reply to a reset upload: {e}")
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP after the reset upload")
    import io

    data = os.urandom(300_000)
    resp = ftp.storbinary("STOR after.bin", io.BytesIO(data))
    check(resp.startswith("226"), f"STOR after the reset upload: {resp!r}")
    check(sha256(retr(ftp, "after.bin")) == sha256(data), "after.bin differs")
    ftp.quit()


def main():
    scenario = sys.argv[1]
    port = int(sys.argv[2])
    user, password, cdir = sys.argv[3], sys.argv[4], sys.argv[5]
    extra = sys.argv[6:]
    globals()[f"scenario_{scenario}"](port, user, password, cdir, *extra)
    print(f"PASS {scenario}")


if __name__ == "__main__":
    main()
