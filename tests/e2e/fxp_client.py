"""Third-party (FXP) transfers between two real Wharf servers, driven by a client on another
loopback address (127.0.0.2), as RFC 959 §5.2 describes a "server-to-server" transfer: the
client opens a passive listener on the destination (PASV or EPSV), points the source at it
(PORT or EPRT), sends STOR to the destination and RETR to the source, and reads both replies.

Usage: python3 fxp_client.py SCENARIO PORT USER PASSWORD CLIENT_DIR OTHER_PORT [OTHER_USER
OTHER_PASSWORD]
PORT is the source server, OTHER_PORT the destination (logged in as USER, or OTHER_USER).
Prints PASS SCENARIO on success."""

import sys
from ftplib import FTP

from ftputil import check

CLIENT_ADDRESS = "127.0.0.2"


def connect(port, user, password):
    """A session from 127.0.0.2, so that 127.0.0.1 (both servers) is a third party to it."""
    ftp = FTP()
    ftp.connect("127.0.0.1", port, timeout=60, source_address=(CLIENT_ADDRESS, 0))
    ftp.login(user, password)
    ftp.sendcmd("TYPE I")
    return ftp


def point(src, dst, extended):
    """Opens the destination's listener and points the source at it: the source's reply."""
    if extended:
        port = int(dst.sendcmd("EPSV").split("|")[3])
        return src.sendcmd(f"EPRT |1|127.0.0.1|{port}|")
    reply = dst.sendcmd("PASV")
    numbers = reply[reply.index("(") + 1 : reply.index(")")]
    return src.sendcmd(f"PORT {numbers}")


def scenario_transfer(src_port, dst_port, user, password, other):
    """big.bin moves from the source to the destination as copy.bin, then back as back.bin with
    EPSV/EPRT: both servers answer 150 and 226."""
    src = connect(src_port, user, password)
    dst = connect(dst_port, *other)
    for extended, (a, b, name_a, name_b) in (
        (False, (src, dst, "big.bin", "copy.bin")),
        (True, (dst, src, "copy.bin", "back.bin")),
    ):
        reply = point(a, b, extended)
        check(reply.startswith("200"), f"PORT/EPRT to the peer: {reply}")
        b.putcmd(f"STOR {name_b}")
        first = a.sendcmd(f"RETR {name_a}")
        check(first.startswith("150"), f"RETR on the source: {first}")
        check(b.getresp().startswith("150"), "STOR on the destination: no 150")
        done_a, done_b = a.getresp(), b.getresp()
        check(done_a.startswith("226"), f"source: {done_a}")
        check(done_b.startswith("226"), f"destination: {done_b}")
        print(f"{name_a} -> {name_b}: {done_a} / {done_b}")
    src.quit()
    dst.quit()


def scenario_refused_port(src_port, dst_port, user, password, other):
    """A source without a policy refuses a PORT and an EPRT to the other server."""
    src = connect(src_port, user, password)
    dst = connect(dst_port, *other)
    for extended in (False, True):
        try:
            reply = point(src, dst, extended)
        except Exception as e:  # ftplib raises error_perm for 5xx
            reply = str(e)
        check(
            reply.startswith("500") and "third-party transfers are not allowed" in reply,
            f"PORT/EPRT to another server without a policy: {reply}",
        )
        print(reply)
    src.quit()
    dst.quit()


def scenario_refused_passive(src_port, dst_port, user, password, other):
    """A destination without a policy closes the source's data connection (passive port theft
    protection): the destination's STOR ends with 425 when its data connection timeout passes,
    and nothing is stored."""
    src = connect(src_port, user, password)
    dst = connect(dst_port, *other)
    reply = point(src, dst, False)
    check(reply.startswith("200"), f"the source's policy allows the PORT: {reply}")
    dst.putcmd("STOR refused.bin")
    try:
        first = src.sendcmd("RETR big.bin")
        final = src.getresp() if first.startswith("1") else first
    except Exception as e:
        final = str(e)
    # The source may hear of the close (426) or not (its bytes fitted in the socket buffers
    # before the reset came back: 226); FTP gives the source no way to know more.
    check(final[:1] in "24", f"the source's RETR into a closed connection: {final}")
    try:
        stor = dst.getresp()
    except Exception as e:
        stor = str(e)
    check(stor.startswith("425"), f"the destination's STOR: {stor}")
    print(f"source: {final} / destination: {stor}")
    src.quit()
    dst.quit()


def main(argv):
    name, port, user, password, _client_dir, other = argv[1:7]
    other_login = tuple(argv[7:9]) if len(argv) >= 9 else (user, password)
    globals()[f"scenario_{name}"](int(port), int(other), user, password, other_login)
    print(f"PASS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
