"""Run a Python module or script with the network refused, and fail if anything tried to use it.

    python tests/no_network.py -m bioimageio.core test package.zip
    python tests/no_network.py script.py ARGS...

An audit hook (it cannot be removed once installed) refuses every socket connection, DNS lookup
and datagram to an address outside this machine (loopback and Unix sockets stay allowed) and
records it. Exit status: the command's own, or 3 when it attempted any network access, even if it
caught the error and carried on. CI runs this inside ``unshare -n`` (no network interface at all)
where that is available; the hook is what proves that nothing was even attempted.
"""

from __future__ import annotations

import ipaddress
import runpy
import socket
import sys

ATTEMPTS: list[str] = []


def _local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host)
    if host in ("localhost", "", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _hook(event: str, args) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) and address else address
    else:
        return
    if not _local(host):
        ATTEMPTS.append(f"{event} {host!r}")
        raise PermissionError(f"network access refused by tests/no_network.py ({event} {host!r})")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    sys.addaudithook(_hook)
    code = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if ATTEMPTS:
        print(f"no_network: {len(ATTEMPTS)} network access attempt(s) refused: {ATTEMPTS[:5]}", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
