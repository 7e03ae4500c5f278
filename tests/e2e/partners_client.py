#!/usr/bin/env python3
"""FTP clients for the trading-partner end-to-end tests (tests/tests/e2e_partners.rs).

    python3 partners_client.py greet BIND PORT
        Connects from source address BIND and prints the server's first reply line.
    python3 partners_client.py login BIND PORT USER PASSWORD
        Connects from BIND, logs in, prints `reply <first line of the last reply>`.
    python3 partners_client.py hold BIND PORT USER PASSWORD
        As `login`, then keeps the session open until its standard input closes (at most
        120 s), then QUITs.
    python3 partners_client.py scenario NAME PORT USER PASSWORD CLIENT_DIR
        One of the partner scenarios below; prints `PASS NAME` when every check held.
    python3 partners_client.py killed-upload PORT USER PASSWORD PATH
        Starts `STOR PATH`, prints `sending` once the server answered 150, then keeps sending
        as fast as the server takes it (for at most 120 s) until the test kills this process.

Binding the client's source address (127.0.0.2 against 127.0.0.1) is why this is Python:
Rust's standard library cannot bind a client socket before connecting. Every socket has a
timeout, so a broken server fails a check instead of hanging the test.
"""

import ftplib
import io
import os
import sys
import time

from ftputil import check, expect_error

HOST = "127.0.0.1"
TIMEOUT = 20


def connect(bind, port):
    ftp = ftplib.FTP(timeout=TIMEOUT, source_address=(bind, 0))
    greeting = ftp.connect(HOST, port)
    return ftp, greeting


def lines(ftp, cmd):
    out = []
    ftp.retrlines(cmd, out.append)
    return out


def names(ftp, path):
    return sorted(ftp.nlst(path))


def listing(ftp, path):
    """LIST of a folder as {name: (mode, owner, group)}."""
    out = {}
    for line in lines(ftp, f"LIST {path}"):
        parts = line.split()
        out[parts[-1]] = (parts[0], parts[2], parts[3])
    return out


def mlsd(ftp, path):
    """MLSD of a folder as {name: {fact: value}} (without `.`)."""
    out = {}
    for line in lines(ftp, f"MLSD {path}"):
        facts, _, name = line.partition(" ")
        d = dict(f.split("=", 1) for f in facts.rstrip(";").split(";"))
        if d.get("type") not in ("cdir", "pdir"):
            out[name] = d
    return out


def stor(ftp, path, data):
    return ftp.storbinary(f"STOR {path}", io.BytesIO(data))


def retr(ftp, path):
    chunks = []
    resp = ftp.retrbinary(f"RETR {path}", chunks.append)
    check(resp.startswith("226"), f"RETR {path}: {resp}")
    return b"".join(chunks)


def fixed_folders_stay(ftp):
    expect_error("550", ftp.rmd, "/Inbox")
    expect_error("550", ftp.rmd, "/Outbox")
    expect_error("550", ftp.rename, "/Outbox", "/Elsewhere")
    expect_error("550", ftp.delete, "/Inbox")
    # The partner's root is root's: no new folders at the top.
    expect_error("550", ftp.mkd, "/Archive")


def scenario_acme_alice(ftp, client_dir):
    top = listing(ftp, "/")
    check(sorted(top) == ["Inbox", "Outbox"], f"root: {top}")
    check(top["Inbox"] == ("drwxr-xr-x", "root", "root"), f"Inbox: {top['Inbox']}")
    check(top["Outbox"] == ("drwxrwxrwx", "root", "root"), f"Outbox: {top['Outbox']}")
    # Pick up what the back end left in the Inbox (mode 0644 on disk: readable by other).
    inbox = listing(ftp, "/Inbox")
    check(inbox.get("order-17.csv") == ("-rw-r--r--", "root", "root"), f"Inbox: {inbox}")
    check(retr(ftp, "Inbox/order-17.csv") == b"sku,qty\nA-1,3\n", "order-17.csv contents")
    # Nothing can be dropped in or taken out of the Inbox.
    expect_error("550", stor, ftp, "Inbox/reply.csv", b"no")
    expect_error("550", ftp.delete, "Inbox/order-17.csv")
    expect_error("550", ftp.rename, "Inbox/order-17.csv", "Outbox/order-17.csv")
    # Drop a file in the Outbox: owned by alice, group acme, r--r--r--.
    check(stor(ftp, "Outbox/invoice-1.txt", b"invoice 1\n").startswith("226"), "STOR")
    out = listing(ftp, "/Outbox")
    check(out.get("invoice-1.txt") == ("-r--r--r--", "alice", "acme"), f"Outbox: {out}")
    facts = mlsd(ftp, "/Outbox")["invoice-1.txt"]
    check(facts["UNIX.mode"] == "0444", f"facts {facts}")
    check(facts["UNIX.owner"] == "alice" and facts["UNIX.group"] == "acme", f"facts {facts}")
    check(facts["perm"] == "dfr", f"perm of her own read-only upload: {facts}")
    top_facts = mlsd(ftp, "/")
    check(top_facts["Inbox"]["perm"] == "el", f"Inbox perm {top_facts['Inbox']}")
    check(top_facts["Inbox"]["UNIX.mode"] == "0755", f"Inbox {top_facts['Inbox']}")
    check(top_facts["Outbox"]["perm"] == "celmp", f"Outbox perm {top_facts['Outbox']}")
    # No overwrite: the upload is read-only, even for its owner.
    expect_error("550", stor, ftp, "Outbox/invoice-1.txt", b"tampered\n")
    expect_error("550", ftp.storbinary, "APPE Outbox/invoice-1.txt", io.BytesIO(b"+"))
    # Her own folder in the Outbox.
    check(ftp.mkd("Outbox/2026") == "/Outbox/2026", "MKD")
    check(listing(ftp, "/Outbox")["2026"] == ("drwxr-xr-x", "alice", "acme"), "2026 owner")
    fixed_folders_stay(ftp)
    # The server's own files are neither listed nor reachable.
    expect_error("553", stor, ftp, "Outbox/.wharf-meta.toml", b"x")
    expect_error("550", retr, ftp, "Outbox/.wharf-meta.toml")
    check(".wharf-meta.toml" not in names(ftp, "/Outbox"), "sidecar listed")


def scenario_acme_amir(ftp, client_dir):
    # A colleague: sees alice's upload (group acme may read it), cannot replace it.
    out = listing(ftp, "/Outbox")
    check(out.get("invoice-1.txt") == ("-r--r--r--", "alice", "acme"), f"Outbox: {out}")
    check(retr(ftp, "Outbox/invoice-1.txt") == b"invoice 1\n", "alice's invoice")
    expect_error("550", stor, ftp, "Outbox/invoice-1.txt", b"mine now\n")
    # alice's folder is rwxr-xr-x alice acme: amir may enter but not write.
    expect_error("550", stor, ftp, "Outbox/2026/x.txt", b"x")
    check(stor(ftp, "Outbox/from-amir.txt", b"amir\n").startswith("226"), "STOR")
    fixed_folders_stay(ftp)


def scenario_globex_gina(ftp, client_dir):
    # Another partner's user: her own tree, nothing of acme's.
    check(names(ftp, "/") == ["Inbox", "Outbox"], "root")
    check(names(ftp, "/Inbox") == ["g-42.csv"], "Inbox")
    check(names(ftp, "/Outbox") == [], "Outbox is empty for globex")
    expect_error("550", retr, ftp, "/Inbox/order-17.csv")
    expect_error("550", retr, ftp, "/Outbox/invoice-1.txt")
    expect_error("550", retr, ftp, "../acme/Outbox/invoice-1.txt")
    expect_error("550", ftp.cwd, "../../acme")
    check(ftp.pwd() == "/", "still at her root")
    check(retr(ftp, "Inbox/g-42.csv") == b"globex order\n", "g-42.csv")
    check(stor(ftp, "Outbox/g-reply.txt", b"globex\n").startswith("226"), "STOR")


def scenario_globex_gus(ftp, client_dir):
    check(names(ftp, "/Outbox") == ["g-reply.txt"], "gus sees gina's upload only")
    out = listing(ftp, "/Outbox")
    check(out["g-reply.txt"] == ("-r--r--r--", "gina", "globex"), f"Outbox {out}")


SCENARIOS = {
    "acme-alice": scenario_acme_alice,
    "acme-amir": scenario_acme_amir,
    "globex-gina": scenario_globex_gina,
    "globex-gus": scenario_globex_gus,
}


def main():
    cmd = sys.argv[1]
    if cmd == "greet":
        bind, port = sys.argv[2], int(sys.argv[3])
        try:
            _, greeting = connect(bind, port)
            print(greeting.splitlines()[0], flush=True)
        except ftplib.all_errors as e:
            print(str(e).splitlines()[0], flush=True)
        return 0
    if cmd in ("login", "hold"):
        bind, port, user, pw = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        ftp, _ = connect(bind, port)
        try:
            reply = ftp.login(user, pw)
        except ftplib.all_errors as e:
            reply = str(e)
        print("reply " + reply.splitlines()[0], flush=True)
        if cmd == "hold" and reply.startswith("230"):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and sys.stdin.readline():
                pass
            ftp.quit()
        return 0
    if cmd == "scenario":
        name, port, user, pw, client_dir = sys.argv[2:7]
        ftp, _ = connect("127.0.0.1", int(port))
        ftp.login(user, pw)
        SCENARIOS[name](ftp, client_dir)
        ftp.quit()
        print(f"PASS {name}", flush=True)
        return 0
    if cmd == "killed-upload":
        port, user, pw, path = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
        ftp, _ = connect("127.0.0.1", port)
        ftp.login(user, pw)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd(f"STOR {path}")
        chunk = os.urandom(64 * 1024)
        conn.sendall(chunk)
        print("sending", flush=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            conn.sendall(chunk)
        return 1
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
