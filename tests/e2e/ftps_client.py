#!/usr/bin/env python3
"""Python ftplib.FTP_TLS scenarios against a running Wharf server, one per invocation.

Run by tests/tests/e2e_tls.rs, which starts the server, prepares the files each scenario
expects, runs

    python3 ftps_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR CAFILE [EXTRA...]

and then checks the exit status, the `PASS SCENARIO` line, and the server's disk. CAFILE is the
server's certificate (self-signed): the client verifies it, host name 127.0.0.1 included.
Every socket operation has a timeout, so a broken server fails a scenario instead of hanging.

Two clients are used:
- ReuseFTP_TLS wraps each data connection with the control connection's TLS session
  (`session=self.sock.session`), as FileZilla, curl and lftp do; Wharf requires this by default.
- plain ftplib.FTP_TLS, which does not offer the session: refused by default (522), accepted
  when the server sets require_tls_session_reuse = false.
"""

import ftplib
import hashlib
import os
import socket
import ssl
import sys
import time

from ftputil import ReuseFTP_TLS, check, sha256

HOST = "127.0.0.1"
TIMEOUT = 30


def to_clear(ftp):
    """After the server ended TLS on the control connection: our close_notify, then a plain
    socket object for the same connection (ftplib's auth() refuses an SSLSocket)."""
    ftp.sock.unwrap()
    fd = ftp.sock.detach()
    ftp.sock = socket.socket(fileno=fd)
    ftp.sock.settimeout(TIMEOUT)
    ftp.file = ftp.sock.makefile("r", encoding=ftp.encoding)


def context(cafile, certfile=None, keyfile=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def connect(cls, port, cafile, **kw):
    ftp = cls(context=context(cafile, **kw), timeout=TIMEOUT)
    ftp.connect(HOST, port)
    return ftp


def login(cls, port, user, password, cafile):
    ftp = connect(cls, port, cafile)
    resp = ftp.login(user, password)
    check(resp.startswith("230"), f"login: {resp!r}")
    check(isinstance(ftp.sock, ssl.SSLSocket), "the control connection is not TLS")
    resp = ftp.prot_p()
    check(resp.startswith("200"), f"PROT P: {resp!r}")
    return ftp


def retr(ftp, name):
    chunks = []
    resp = ftp.retrbinary(f"RETR {name}", chunks.append, blocksize=1 << 16)
    check(resp.startswith("226"), f"RETR {name}: {resp!r}")
    return b"".join(chunks)


def expect_522(ftp, what, fn):
    """fn() must end with a 522 reply. The server closes a refused data connection, so the
    client may fail on the data socket first; then the reply is still waiting to be read."""
    try:
        resp = fn()
    except ftplib.error_perm as e:
        check(str(e).startswith("522"), f"{what}: want 522, got {e}")
        return str(e)
    except (OSError, EOFError) as e:
        print(f"{what}: the data connection failed on the client's side first: {e!r}")
        try:
            resp = ftp.getresp()
        except ftplib.error_perm as e2:
            check(str(e2).startswith("522"), f"{what}: want 522, got {e2}")
            return str(e2)
    raise AssertionError(f"{what}: want 522, got success {resp!r}")


def scenario_roundtrip(port, user, password, cdir, cafile):
    """20 MB up and down through protected, resumed data connections, compared by sha256."""
    data = open(os.path.join(cdir, "big.bin"), "rb").read()
    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    t0 = time.monotonic()
    with open(os.path.join(cdir, "big.bin"), "rb") as f:
        resp = ftp.storbinary("STOR big.bin", f, blocksize=1 << 18)
    up = time.monotonic() - t0
    check(resp.startswith("226"), f"STOR: {resp!r}")
    check(ftp.size("big.bin") == len(data), "SIZE after STOR")
    t0 = time.monotonic()
    back = retr(ftp, "big.bin")
    down = time.monotonic() - t0
    check(sha256(back) == sha256(data), "sha256 of the downloaded copy")
    names = ftp.nlst()
    check("big.bin" in names, f"NLST: {names!r}")
    mb = len(data) / 1e6
    print(f"STOR {mb / up:.0f} MB/s, RETR {mb / down:.0f} MB/s (Python ftplib, TLS)")
    ftp.quit()


def scenario_no_reuse_refused(port, user, password, cdir, cafile):
    """Plain FTP_TLS offers no session on data connections: every transfer gets 522, the
    control connection goes on, and the file the STOR named is left as it was."""
    ftp = login(ftplib.FTP_TLS, port, user, password, cafile)
    msg = expect_522(ftp, "RETR", lambda: retr(ftp, "keep.bin"))
    check("did not resume" in msg, f"the 522 says why: {msg!r}")
    expect_522(ftp, "LIST", lambda: ftp.nlst())
    with open(os.path.join(cdir, "other.bin"), "rb") as f:
        expect_522(ftp, "STOR", lambda: ftp.storbinary("STOR keep.bin", f))
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP after the refusals")
    # The same session reuses fine once the client offers the session.
    ftp.__class__ = ReuseFTP_TLS
    data = retr(ftp, "keep.bin")
    check(sha256(data) == sha256(open(os.path.join(cdir, "keep.bin"), "rb").read()),
          "keep.bin unchanged and readable with reuse")
    ftp.quit()


def scenario_no_reuse_allowed(port, user, password, cdir, cafile):
    """With require_tls_session_reuse = false, plain FTP_TLS transfers work."""
    data = open(os.path.join(cdir, "small.bin"), "rb").read()
    ftp = login(ftplib.FTP_TLS, port, user, password, cafile)
    with open(os.path.join(cdir, "small.bin"), "rb") as f:
        resp = ftp.storbinary("STOR small.bin", f)
    check(resp.startswith("226"), f"STOR: {resp!r}")
    check(sha256(retr(ftp, "small.bin")) == sha256(data), "round trip")
    ftp.quit()


def cut_upload(ftp, name, size):
    """STOR `name`, send `size` random bytes, then end the data connection with a bare TCP
    close; returns the final reply."""
    conn = ftp.transfercmd(f"STOR {name}")
    check(isinstance(conn, ssl.SSLSocket), "the data connection is TLS")
    conn.sendall(os.urandom(size))
    # socket.shutdown on an SSLSocket drops the TLS layer without close_notify (unwrap()
    # would send it) and sends a TCP FIN: the server sees end of file where the TLS stream
    # is not finished, as after a forged FIN. Then read (raw) until the server closes, so
    # that unread bytes (a TLS 1.3 ticket) do not turn our close into a reset.
    conn.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if not conn.recv(1 << 16):
                break
        except OSError:
            break
    conn.close()
    try:
        return ftp.getresp()
    except (ftplib.error_temp, ftplib.error_perm) as e:
        return str(e)


def scenario_cut_upload(port, user, password, cdir, cafile):
    """A protected upload whose data connection ends with a bare TCP close (no close_notify)
    must not be reported complete: cut.bin within its first MiB, cut-large.bin past the
    first 8 MiB (where uploads go with direct I/O), in the middle of a chunk."""
    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    for name, size in (("cut.bin", 1 << 20), ("cut-large.bin", (19 << 20) + 777)):
        resp = cut_upload(ftp, name, size)
        print(f"{name}: final reply: {resp}")
        check(resp[:3] in ("426", "451"), f"{name}: want 426 or 451, got {resp!r}")
        check("close_notify" in resp, f"{name}: the reply says why: {resp!r}")
        check(ftp.voidcmd("NOOP").startswith("200"), f"NOOP after the cut upload of {name}")
    ftp.quit()


def scenario_password_login(port, user, password, cdir, cafile):
    """USER and PASS over TLS, then a protected round trip of small.bin."""
    data = open(os.path.join(cdir, "small.bin"), "rb").read()
    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    with open(os.path.join(cdir, "small.bin"), "rb") as f:
        resp = ftp.storbinary("STOR small.bin", f)
    check(resp.startswith("226"), f"STOR: {resp!r}")
    check(sha256(retr(ftp, "small.bin")) == sha256(data), "round trip")
    ftp.quit()


def scenario_ccc_rein(port, user, password, cdir, cafile):
    """CCC: the control connection goes back to the clear after close_notify, and data
    connections stay protected. REIN: TLS ends too, PBSZ is refused until a new AUTH TLS,
    which works on the same connection."""
    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    check(retr(ftp, "hello.txt") == b"hello\n", "RETR before CCC")
    ftp.saved_session = ftp.sock.session
    resp = ftp.sendcmd("CCC")
    check(resp.startswith("200"), f"CCC: {resp!r}")
    to_clear(ftp)
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP in the clear after CCC")
    check(retr(ftp, "hello.txt") == b"hello\n", "protected RETR after CCC")
    ftp.quit()

    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    resp = ftp.sendcmd("REIN")
    check(resp.startswith("220"), f"REIN: {resp!r}")
    to_clear(ftp)
    try:
        resp = ftp.sendcmd("PBSZ 0")
        raise AssertionError(f"PBSZ after REIN: want 503, got {resp!r}")
    except ftplib.error_perm as e:
        check(str(e).startswith("503"), f"PBSZ after REIN: {e}")
    ftp.auth()
    resp = ftp.login(user, password)
    check(resp.startswith("230"), f"login after REIN and AUTH TLS: {resp!r}")
    ftp.prot_p()
    check(retr(ftp, "hello.txt") == b"hello\n", "RETR after the second AUTH TLS")
    ftp.quit()


def scenario_hold_for_reload(port, user, password, cdir, cafile):
    """Logs in, lists, then waits (bounded) for the test to replace the certificate; the same
    session must keep working afterwards, data connections included."""
    ftp = login(ReuseFTP_TLS, port, user, password, cafile)
    before = ftp.nlst()
    open(os.path.join(cdir, "ready"), "w").close()
    go = os.path.join(cdir, "go")
    deadline = time.monotonic() + 90
    while not os.path.exists(go):
        check(time.monotonic() < deadline, "the test never said go")
        time.sleep(0.05)
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP after the reload")
    after = ftp.nlst()
    check(after == before, f"NLST after the reload: {after!r} vs {before!r}")
    check(retr(ftp, "hello.txt") == b"hello\n", "RETR after the reload")
    ftp.quit()


def scenario_client_cert(port, user, password, cdir, cafile, certfile, keyfile):
    """A client certificate whose CN is a user logs in with USER alone: 232."""
    ftp = connect(ReuseFTP_TLS, port, cafile, certfile=certfile, keyfile=keyfile)
    ftp.auth()
    resp = ftp.sendcmd(f"USER {user}")
    check(resp.startswith("232"), f"USER with a certificate: {resp!r}")
    ftp.prot_p()
    check(retr(ftp, "hello.txt") == b"hello\n", "RETR after a certificate login")
    ftp.quit()


def main():
    name, port, user, password, cdir, cafile = sys.argv[1:7]
    extra = sys.argv[7:]
    fn = globals().get(f"scenario_{name}")
    check(fn is not None, f"unknown scenario {name}")
    fn(int(port), user, password, cdir, cafile, *extra)
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
