#!/usr/bin/env python3
"""Python ftplib scenarios for Wharf's events, event command, transfer log and rate limits.

Run by tests/tests/e2e_events.rs, which starts the server with an events file (and what else
the scenario needs), then runs

    python3 events_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR [key=value ...]

and checks the exit status and the `PASS SCENARIO` line. The scenarios read the server's
events file themselves (its path is one of the key=value arguments), so that each operation
is checked right after it: the event must appear (within a deadline: a transfer's event is
written just after its 226), with the right fields, and nothing unexpected before it. Every
socket operation and every wait has a timeout.
"""

import datetime
import ftplib
import json
import os
import socket
import ssl
import struct
import sys
import time

import ftputil
from ftputil import check

HOST = "127.0.0.1"
TIMEOUT = 30
EVENT_WAIT = 10
KEYS = {"time", "event", "session", "user", "partner", "client", "path", "to", "size",
        "duration", "result", "reason"}


class Events:
    """The server's events file, read as it grows; a cursor marks what was checked."""

    def __init__(self, path):
        self.path = path
        self.cursor = 0

    def all(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        # Only whole lines: a line is written in one write(2), but we may read mid-way.
        lines = data.split(b"\n")[:-1]
        out = []
        for raw in lines:
            text = raw.decode("utf-8")
            obj = json.loads(text)
            check(isinstance(obj, dict), f"not a JSON object: {text!r}")
            check(set(obj) == KEYS, f"keys {sorted(obj)} in {text!r}")
            t = datetime.datetime.fromisoformat(obj["time"])
            check(obj["time"].endswith("+00:00"), f"time with offset: {obj['time']!r}")
            age = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
            check(age < 120, f"time {obj['time']} is {age:.0f} s away from now")
            check(isinstance(obj["session"], int), f"session id: {text!r}")
            check(obj["result"] in ("ok", "failed", "incomplete"), f"result: {text!r}")
            out.append(obj)
        return out

    def expect(self, event, allowed=(), timeout=EVENT_WAIT, **fields):
        """Waits for the next `event` after the cursor whose fields match; only events named
        in `allowed` may come before it. Moves the cursor past it and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.all()
            for i in range(self.cursor, len(evs)):
                e = evs[i]
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                    for skipped in evs[self.cursor:i]:
                        check(skipped["event"] in allowed,
                              f"unexpected event {skipped} before {event} {fields}")
                    self.cursor = i + 1
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {event} event with {fields} within {timeout} s; after the cursor: "
                    f"{evs[self.cursor:]}")
            time.sleep(0.02)

    def none_of(self, event, **fields):
        for e in self.all():
            if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                raise AssertionError(f"unexpected {event} event: {e}")


def args_dict(rest):
    out = {}
    for a in rest:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def client_addr(ftp):
    host, port = ftp.sock.getsockname()[:2]
    return f"{host}:{port}"


def connect(port, tls=None):
    if tls:
        ftp = tls(context=ssl.create_default_context(cafile=tls.cafile), timeout=TIMEOUT)
    else:
        ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    return ftp


class ReuseFTP_TLS(ftputil.ReuseFTP_TLS):
    """The shared session-resuming FTP_TLS, with the CA file this script trusts."""

    cafile = None


def scenario_operations(port, user, password, cdir, a):
    """connect, failed login, login, mkdir, upload, download, rename, delete, rmdir, logout:
    the events file checked after each."""
    ev = Events(a["events"])

    # A failed login on a connection of its own.
    bad = connect(port)
    c = ev.expect("connect", client=client_addr(bad), user=None, result="ok")
    bad_session = c["session"]
    try:
        bad.login(user, "wrong-" + password)
        raise AssertionError("a wrong password was accepted")
    except ftplib.error_perm as e:
        check(str(e).startswith("530"), f"wrong password: {e}")
    f = ev.expect("login_failed", session=bad_session, user=user, result="failed")
    check(f["reason"], f"a failed login says why: {f}")
    bad.quit()

    ftp = connect(port)
    me = client_addr(ftp)
    c = ev.expect("connect", client=me, result="ok", reason=None)
    s = c["session"]
    check(s != bad_session, "each connection has its own session id")
    ftp.login(user, password)
    e = ev.expect("login", session=s, user=user, client=me, result="ok")
    check(e["path"] is None and e["size"] is None, f"login event: {e}")

    ftp.mkd("docs")
    ev.expect("mkdir", session=s, user=user, path="/docs", result="ok")

    data = os.urandom(123_457)
    name = "docs/a b \"q\".bin"
    with open(os.path.join(cdir, "up.bin"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(cdir, "up.bin"), "rb") as fh:
        resp = ftp.storbinary(f"STOR {name}", fh)
    check(resp.startswith("226"), f"STOR: {resp!r}")
    e = ev.expect("upload_complete", session=s, user=user, path="/" + name, size=len(data),
                  result="ok", reason=None)
    check(isinstance(e["duration"], float) and 0 <= e["duration"] < 60, f"duration: {e}")

    got = []
    resp = ftp.retrbinary(f"RETR {name}", got.append)
    check(resp.startswith("226"), f"RETR: {resp!r}")
    check(b"".join(got) == data, "downloaded bytes")
    ev.expect("download_complete", session=s, path="/" + name, size=len(data), result="ok")

    # A listing is no file transfer: no event.
    ftp.nlst("docs")

    ftp.rename(name, "docs/b.bin")
    ev.expect("rename", session=s, path="/" + name, to="/docs/b.bin", result="ok")

    ftp.delete("docs/b.bin")
    ev.expect("delete", session=s, path="/docs/b.bin", result="ok")

    ftp.rmd("docs")
    ev.expect("rmdir", session=s, path="/docs", result="ok")

    # A download refused before it starts (no such file) is no transfer: no event.
    try:
        ftp.retrbinary("RETR missing.bin", got.append)
        raise AssertionError("RETR of a missing file succeeded")
    except ftplib.error_perm as e:
        check(str(e).startswith("550"), f"RETR missing: {e}")

    ftp.quit()
    ev.expect("logout", session=s, user=user, result="ok")

    # A connection that just drops still logs out.
    gone = connect(port)
    ev.expect("connect", client=client_addr(gone))
    gone.login(user, password)
    e = ev.expect("login", user=user)
    gone.sock.close()
    gone.file.close()
    ev.expect("logout", session=e["session"], user=user)
    ev.none_of("upload_failed")


def send_then_reset(conn, data):
    """Sends `data`, then closes with a TCP reset (SO_LINGER 0): an abrupt end."""
    conn.sendall(data)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def final_reply(ftp):
    try:
        return ftp.getresp()
    except (ftplib.error_temp, ftplib.error_perm) as e:
        return str(e)


def scenario_cut_transfers(port, user, password, cdir, a):
    """Transfers cut mid-way: no upload_complete (download_complete), an upload_failed
    (download_failed) marked incomplete."""
    ev = Events(a["events"])
    ftp = connect(port)
    ftp.login(user, password)
    ev.expect("login", allowed=("connect",), user=user)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR reset.bin")
    send_then_reset(conn, os.urandom(300_000))
    resp = final_reply(ftp)
    check(resp.startswith("426"), f"after a reset upload: {resp!r}")
    e = ev.expect("upload_failed", path="/reset.bin")
    check(e["reason"], f"a failed upload says why: {e}")
    # Bytes may or may not have been read before the reset: incomplete, or failed if none.
    check(e["result"] == ("incomplete" if e["size"] else "failed"), f"{e}")
    ev.none_of("upload_complete", path="/reset.bin")
    check(ftp.voidcmd("NOOP").startswith("200"), "the session goes on")

    # A download the client resets after 64 KiB.
    conn = ftp.transfercmd("RETR big.bin")
    got = 0
    while got < 65536:
        b = conn.recv(65536 - got)
        check(b, "the download ended early")
        got += len(b)
    send_then_reset(conn, b"")
    resp = final_reply(ftp)
    check(resp[:3] in ("426", "451"), f"after a reset download: {resp!r}")
    e = ev.expect("download_failed", path="/big.bin", result="incomplete")
    check(e["size"] >= 65536 and e["reason"], f"{e}")
    ev.none_of("download_complete")
    ftp.quit()

    # Protected: a bare TCP end without TLS close_notify.
    ReuseFTP_TLS.cafile = a["cafile"]
    ftps = connect(port, ReuseFTP_TLS)
    ftps.login(user, password)
    ftps.prot_p()
    conn = ftps.transfercmd("STOR tls-cut.bin")
    conn.sendall(os.urandom(200_000))
    conn.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if not conn.recv(1 << 16):
                break
        except OSError:
            break
    conn.close()
    resp = final_reply(ftps)
    check(resp[:3] in ("426", "451"), f"after a TLS upload without close_notify: {resp!r}")
    e = ev.expect("upload_failed", allowed=("connect", "login", "logout"), path="/tls-cut.bin",
                  result="incomplete")
    check("close_notify" in e["reason"], f"the reason says why: {e}")
    ev.none_of("upload_complete", path="/tls-cut.bin")
    ftps.quit()


def scenario_slow_upload(port, user, password, cdir, a):
    """Starts an upload and keeps sending (so that it is mid-transfer whenever it is killed);
    says SENT after the first 500 kB."""
    ftp = connect(port)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR killed.bin")
    chunk = os.urandom(100_000)
    deadline = time.monotonic() + 60
    sent = 0
    while time.monotonic() < deadline:
        conn.sendall(chunk)
        sent += len(chunk)
        if sent == 500_000:
            print("SENT", flush=True)
        time.sleep(0.001)
    raise AssertionError("not killed")


def scenario_command(port, user, password, cdir, a):
    """The event command gets its events (JSON on stdin, file names passed untouched); one
    that hangs (on mkdir) is killed and the next ones still run; sessions never wait."""
    ev = Events(a["events"])
    out = a["command_out"]
    ftp = connect(port)
    ftp.login(user, password)
    login = ev.expect("login", allowed=("connect",), user=user)

    started = time.monotonic()
    ftp.mkd("hang")
    took = time.monotonic() - started
    check(took < 1.5, f"MKD waited {took:.1f} s for the hanging command")
    ev.expect("mkdir", path="/hang")

    name = "$(touch pwned);`touch pwned2`;'x' \"y\" |z&.txt"
    data = b"event command payload\n"
    with open(os.path.join(cdir, "cmd.txt"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(cdir, "cmd.txt"), "rb") as fh:
        check(ftp.storbinary(f"STOR {name}", fh).startswith("226"), "STOR")
    up = ev.expect("upload_complete", path="/" + name, size=len(data))
    ftp.quit()

    # The command writes each event it gets to `out`, one line each, except for mkdir, on
    # which it hangs (and is killed after event_command_timeout_secs).
    deadline = time.monotonic() + 30
    got = []
    while time.monotonic() < deadline:
        try:
            with open(out, "rb") as f:
                got = [json.loads(l) for l in f.read().split(b"\n") if l]
        except FileNotFoundError:
            got = []
        if any(g["event"] == "upload_complete" for g in got):
            break
        time.sleep(0.05)
    kinds = [g["event"] for g in got]
    print(f"the command got: {kinds}")
    check(kinds == ["login", "upload_complete"], f"filtered events in order: {kinds}")
    check(got[0] == login, f"the command's login event equals the file's: {got[0]} vs {login}")
    check(got[1] == up, f"the command's upload event equals the file's: {got[1]} vs {up}")
    check(got[1]["path"] == "/" + name, f"file name passed untouched: {got[1]['path']!r}")


def scenario_rate(port, user, password, cdir, a):
    """Uploads and downloads `size` bytes under the user's rate limits; prints the times."""
    size = int(a["size"])
    if a.get("tls"):
        ReuseFTP_TLS.cafile = a["cafile"]
        ftp = connect(port, ReuseFTP_TLS)
        ftp.login(user, password)
        ftp.prot_p()
    else:
        ftp = connect(port)
        ftp.login(user, password)
    data = os.urandom(size)
    with open(os.path.join(cdir, "rate.bin"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(cdir, "rate.bin"), "rb") as fh:
        started = time.monotonic()
        resp = ftp.storbinary("STOR rate.bin", fh, blocksize=1 << 16)
        up = time.monotonic() - started
    check(resp.startswith("226"), f"STOR: {resp!r}")
    got = []
    started = time.monotonic()
    resp = ftp.retrbinary("RETR rate.bin", got.append, blocksize=1 << 16)
    down = time.monotonic() - started
    check(resp.startswith("226"), f"RETR: {resp!r}")
    check(b"".join(got) == data, "downloaded bytes")
    print(f"UPLOAD_SECS {up:.3f}")
    print(f"DOWNLOAD_SECS {down:.3f}")
    ftp.quit()


def main():
    if len(sys.argv) < 6:
        print(__doc__)
        sys.exit(2)
    name, port, user, password, cdir = sys.argv[1:6]
    a = args_dict(sys.argv[6:])
    fn = globals().get(f"scenario_{name}")
    if fn is None:
        print(f"unknown scenario {name}")
        sys.exit(2)
    socket.setdefaulttimeout(TIMEOUT)
    fn(int(port), user, password, cdir, a)
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
