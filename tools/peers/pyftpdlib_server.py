"""pyftpdlib as a benchmark peer for tools/peers.sh (not part of Wharf's tests).

Usage: pyftpdlib_server.py HOST PORT ROOT USER PASSWORD CERT KEY PASV_LOW PASV_HIGH

One user with a plain password (DummyAuthorizer), explicit FTPS available but not required
(TLS_FTPHandler with pyOpenSSL), a passive port range, connection limits raised so a storm of
2,000 sessions and 1,000 idle sessions fit, and logging reduced to warnings so that logging
does not dominate the figures.
"""

import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    host, port, root, user, password, cert, key, low, high = sys.argv[1:10]
    if not (host.startswith("127.") or host == "::1"):
        sys.exit("loopback addresses only")
    logging.basicConfig(level=logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, root, perm="elradfmwMT")
    handler = TLS_FTPHandler
    handler.authorizer = authorizer
    handler.certfile = cert
    handler.keyfile = key
    handler.tls_control_required = False
    handler.tls_data_required = False
    handler.passive_ports = range(int(low), int(high) + 1)
    handler.banner = "pyftpdlib ready."
    server = FTPServer((host, int(port)), handler, backlog=1024)
    server.max_cons = 5000
    server.max_cons_per_ip = 0
    print(f"listening on ftp://{host}:{port}", flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
