#!/usr/bin/env python3
"""Plays a Go FTPS client (rclone, via github.com/jlaffaye/ftp and crypto/tls) uploading over
a protected data connection (RFC 4217, PROT P, TLS 1.3), which never reads from that
connection: it writes the file, sends close_notify and closes the socket.

    python3 tls_unread_close.py upload PORT USER PASSWORD CLIENT_DIR CAFILE SERVER_ROOT

Go's tls.Conn.Close() sends a close_notify alert and closes the TCP socket without reading
anything. Whatever the server sent on that connection after the handshake (a TLS 1.3
NewSessionTicket) is still unread in the client's receive buffer, and closing a socket with
unread data makes the kernel send a reset (RFC 2525, 2.17), which can throw away the end of
the upload still in flight.

Python's ssl module cannot do this with an SSLSocket: unwrap() sends close_notify and then
reads until the server's close_notify (consuming the tickets), and close() sends no
close_notify at all. So the data connection is driven through an SSLObject over memory BIOs:
the handshake reads from the socket one TLS record at a time, only while the handshake wants
more (as crypto/tls reads record by record), the data and the close_notify are written, and the
socket is closed. Nothing the server sends after the handshake is ever read.

Five 30 MB uploads in a row, each resuming the control connection's TLS session (as
tests/e2e/ftps_client.py's ReuseFTP_TLS does). PASS when every one gets 226 and the file in
SERVER_ROOT has the SHA-256 of what was sent.
"""

import ftplib
import os
import ssl
import sys
import time

from ftputil import check, sha256

HOST = "127.0.0.1"
TIMEOUT = 30
SIZE = 30_000_000
ROUNDS = 5


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        check(chunk, "the server closed the data connection during the TLS handshake")
        buf += chunk
    return buf


def recv_record(sock):
    """One TLS record: the 5-byte header, then exactly the length it gives."""
    header = recv_exactly(sock, 5)
    return header + recv_exactly(sock, int.from_bytes(header[3:5], "big"))


def upload_without_reading(ftp, name, data):
    """STOR `name` as Go does: returns the final reply (or the error it raised)."""
    sock, _ = ftplib.FTP.ntransfercmd(ftp, f"STOR {name}")  # PASV, STOR, 150; plain TCP
    sock.settimeout(TIMEOUT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ftp.context.wrap_bio(incoming, outgoing, server_hostname=HOST,
                               session=ftp.sock.session)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(recv_record(sock))
    sock.sendall(outgoing.read())
    check(tls.version() == "TLSv1.3", f"the data connection speaks {tls.version()}")
    check(tls.session_reused, "the data connection did not resume the control session")
    view = memoryview(data)
    for i in range(0, len(data), 1 << 18):
        tls.write(view[i:i + (1 << 18)])
        sock.sendall(outgoing.read())
    try:
        tls.unwrap()  # writes close_notify, then wants the server's: never given
    except ssl.SSLWantReadError:
        pass
    sock.sendall(outgoing.read())
    sock.close()
    try:
        return ftp.voidresp()
    except ftplib.all_errors as e:
        return f"error: {e}"


def scenario_upload(port, user, password, cdir, cafile, root):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ftp = ftplib.FTP_TLS(context=ctx, timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, password)
    ftp.prot_p()
    ftp.voidcmd("TYPE I")
    results = []
    for n in range(ROUNDS):
        name = f"unread-{n}.bin"
        data = os.urandom(SIZE)
        t0 = time.monotonic()
        resp = upload_without_reading(ftp, name, data)
        secs = time.monotonic() - t0
        path = os.path.join(root, name)
        stored = open(path, "rb").read() if os.path.exists(path) else None
        same = stored is not None and sha256(stored) == sha256(data)
        kept = "missing" if stored is None else f"{len(stored)} bytes"
        print(f"round {n}: {resp!r} in {secs:.2f} s; stored: {kept}, identical: {same}")
        results.append(resp.startswith("226") and same)
        if stored is not None:
            os.remove(path)
    ftp.quit()
    check(all(results), f"{results.count(False)} of {ROUNDS} uploads failed (see above)")


def main():
    name, port, user, password, cdir = sys.argv[1:6]
    fn = globals().get(f"scenario_{name}")
    check(fn is not None, f"unknown scenario {name}")
    fn(int(port), user, password, cdir, *sys.argv[6:])
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
