#!/usr/bin/env python3
"""Plays clients that resume a transfer with REST (RFC 3659, section 5: REST STREAM) sending the
commands in orders other than "REST right before RETR/STOR": REST, then the data connection
(PASV, EPSV or PORT) and TYPE, then RETR/STOR. vsftpd, pure-ftpd, ProFTPD and pyftpdlib keep
the offset until the transfer it is for. Python's own ftplib sends REST after PASV; that
order is played too.

    python3 rest_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR FILE OFFSET [UPLOAD]

Scenarios (FILE is on the server; the test checks the results):
- rest_epsv_retr:      REST n, EPSV, RETR   -> CLIENT_DIR/got.bin holds what came
- rest_port_retr:      REST n, PORT, RETR   -> CLIENT_DIR/got.bin
- rest_type_pasv_stor: REST n, TYPE I, PASV, STOR with the bytes of UPLOAD (a local file)
- ftplib_retr:         ftplib's retrbinary(rest=n): PASV, REST n, RETR -> CLIENT_DIR/got.bin
- ftplib_stor:         ftplib's storbinary(rest=n): PASV, REST n, STOR with UPLOAD

Every one must get 350 for REST and 226 at the end; PASS then, the contents are the test's.
"""

import ftplib
import os
import socket
import sys

from ftputil import check

HOST = "127.0.0.1"
TIMEOUT = 30


def login(port, user, password):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, password)
    return ftp


def rest(ftp, offset):
    resp = ftp.sendcmd(f"REST {offset}")
    check(resp.startswith("350"), f"REST {offset}: {resp!r}")


def read_all(conn):
    chunks = []
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def save(cdir, data):
    with open(os.path.join(cdir, "got.bin"), "wb") as f:
        f.write(data)
    print(f"received {len(data)} bytes")


def finish(ftp, what):
    resp = ftp.voidresp()
    check(resp.startswith("226"), f"{what}: {resp!r}")
    ftp.quit()


def scenario_rest_epsv_retr(ftp, cdir, name, offset, upload):
    ftp.voidcmd("TYPE I")
    rest(ftp, offset)
    host, port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())
    conn = socket.create_connection((host, port), timeout=TIMEOUT)
    resp = ftp.sendcmd(f"RETR {name}")
    check(resp.startswith("150"), f"RETR: {resp!r}")
    save(cdir, read_all(conn))
    conn.close()
    finish(ftp, "RETR after REST and EPSV")


def scenario_rest_port_retr(ftp, cdir, name, offset, upload):
    ftp.voidcmd("TYPE I")
    rest(ftp, offset)
    listener = ftp.makeport()  # PORT to a listening socket of ours
    resp = ftp.sendcmd(f"RETR {name}")
    check(resp.startswith("150"), f"RETR: {resp!r}")
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    save(cdir, read_all(conn))
    conn.close()
    listener.close()
    finish(ftp, "RETR after REST and PORT")


def scenario_rest_type_pasv_stor(ftp, cdir, name, offset, upload):
    data = open(upload, "rb").read()
    rest(ftp, offset)
    ftp.voidcmd("TYPE I")
    host, port = ftplib.parse227(ftp.sendcmd("PASV"))
    conn = socket.create_connection((host, port), timeout=TIMEOUT)
    resp = ftp.sendcmd(f"STOR {name}")
    check(resp.startswith("150"), f"STOR: {resp!r}")
    conn.sendall(data)
    conn.close()
    finish(ftp, "STOR after REST, TYPE and PASV")


def scenario_ftplib_retr(ftp, cdir, name, offset, upload):
    chunks = []
    resp = ftp.retrbinary(f"RETR {name}", chunks.append, rest=offset)
    check(resp.startswith("226"), f"RETR: {resp!r}")
    save(cdir, b"".join(chunks))
    ftp.quit()


def scenario_ftplib_stor(ftp, cdir, name, offset, upload):
    with open(upload, "rb") as f:
        resp = ftp.storbinary(f"STOR {name}", f, rest=offset)
    check(resp.startswith("226"), f"STOR: {resp!r}")
    ftp.quit()


def main():
    scenario, port, user, password, cdir, name, offset = sys.argv[1:8]
    upload = sys.argv[8] if len(sys.argv) > 8 else None
    fn = globals().get(f"scenario_{scenario}")
    check(fn is not None, f"unknown scenario {scenario}")
    fn(login(int(port), user, password), cdir, name, int(offset), upload)
    print(f"PASS {scenario}")


if __name__ == "__main__":
    main()
