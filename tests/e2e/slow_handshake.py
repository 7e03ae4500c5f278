#!/usr/bin/env python3
"""Plays a client that stretches its TLS handshake (a slowloris on FTPS): it sends a real
ClientHello one byte per second, on a control connection after `AUTH TLS` (RFC 4217, section
4), on an implicit-TLS listener (the connection starts with TLS), or on a protected data
connection (`data`: a client logged in over TLS sends PBSZ 0, PROT P, PASV and RETR big.bin,
then trickles the data connection's ClientHello; the control connection must then hear a
4xx or RFC 4217's 522, and the session goes on).

    python3 slow_handshake.py trickle PORT USER PASSWORD CLIENT_DIR explicit|implicit|data TLS_PORT LIMIT

The ClientHello is made by Python's ssl with memory BIOs: do_handshake() writes it to the
outgoing BIO and raises SSLWantReadError, waiting for a ServerHello it never gets. Its bytes
are sent one a second with TCP_NODELAY, and the client watches for the server closing the
connection (end of file or a reset) between bytes; when the ClientHello is all sent it keeps
waiting. It gives up LIMIT seconds after connecting.

Prints `closed after S s` or `still open after S s`, with how many bytes went. PASS when the
server closed the connection within LIMIT seconds: a handshake has a total deadline, however
the client paces its bytes.
"""

import select
import socket
import ssl
import sys
import time

from ftputil import check

HOST = "127.0.0.1"


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(len(hello) > 100 and hello[0] == 0x16, f"not a ClientHello: {hello[:8]!r}")
    return hello


def read_line(sock, limit):
    buf = b""
    deadline = time.monotonic() + limit
    while not buf.endswith(b"\n"):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1)
        check(chunk, f"connection closed while reading a reply: {buf!r}")
        buf += chunk
    return buf.decode("utf-8", "replace").rstrip()


def closed(sock, wait):
    """Whether the server closed the connection within `wait` seconds (anything it sends,
    such as an alert, is read and ignored)."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return False
        try:
            if not sock.recv(4096):
                return True
        except OSError:  # a reset
            return True


class TlsControl:
    """A control connection protected with AUTH TLS, logged in."""

    def __init__(self, port, user, password):
        raw = socket.create_connection((HOST, port), timeout=10)
        self.sock = raw
        self.buf = b""
        check(self.reply().startswith("220"), "greeting")
        self.cmd("AUTH TLS", "234")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        self.cmd(f"USER {user}", "331")
        self.cmd(f"PASS {password}", "230")

    def reply(self, timeout=10):
        """The next reply's last line (multi-line replies are read whole)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" " and line[:3].isdigit():
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return line.decode("utf-8", "replace")
            left = deadline - time.monotonic()
            check(left > 0, f"no reply within {timeout} s: {self.buf!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            check(chunk, f"control connection closed: {self.buf!r}")
            self.buf += chunk

    def cmd(self, line, code):
        self.sock.sendall(line.encode() + b"\r\n")
        r = self.reply()
        check(r.startswith(code), f"{line}: want {code}, got {r!r}")
        return r


def scenario_trickle(port, user, password, cdir, mode, tls_port, limit):
    limit = float(limit)
    hello = client_hello()
    control = None
    if mode == "data":
        control = TlsControl(int(tls_port), user, password)
        control.cmd("PBSZ 0", "200")
        control.cmd("PROT P", "200")
        r = control.cmd("PASV", "227")
        nums = [int(n) for n in r[r.index("(") + 1:r.index(")")].split(",")]
        data_port = nums[4] * 256 + nums[5]
        control.sock.sendall(b"RETR big.bin\r\n")
    started = time.monotonic()
    sock = socket.create_connection((HOST, data_port if control else int(tls_port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "explicit":
        greeting = read_line(sock, 10)
        check(greeting.startswith("220"), f"greeting: {greeting!r}")
        sock.sendall(b"AUTH TLS\r\n")
        reply = read_line(sock, 10)
        check(reply.startswith("234"), f"AUTH TLS: {reply!r}")
    else:
        check(mode in ("implicit", "data"), f"mode {mode!r}")
    sent = 0
    gone = False
    while time.monotonic() - started < limit:
        if sent < len(hello):
            try:
                sock.send(hello[sent:sent + 1])
                sent += 1
            except OSError:
                gone = True
                break
        if closed(sock, 1.0):
            gone = True
            break
    secs = time.monotonic() - started
    state = "closed" if gone else "still open"
    print(f"{mode}: {state} after {secs:.1f} s, {sent} of {len(hello)} ClientHello bytes sent")
    sock.close()
    check(gone, f"{mode}: the handshake was still going after {secs:.1f} s (limit {limit} s)")
    if control:
        # The transfer failed, and the session says so and goes on.
        r = control.reply(timeout=30)
        while r.startswith("1"):
            r = control.reply(timeout=30)
        print(f"RETR big.bin: {r}")
        check(
            r[:1] == "4" or r.startswith("522"),
            f"RETR after the stalled handshake: want 4xx or 522, got {r!r}",
        )
        control.cmd("NOOP", "200")


def main():
    name, port, user, password, cdir = sys.argv[1:6]
    fn = globals().get(f"scenario_{name}")
    check(fn is not None, f"unknown scenario {name}")
    fn(int(port), user, password, cdir, *sys.argv[6:])
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
