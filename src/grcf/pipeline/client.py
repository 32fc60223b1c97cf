"""The client side of `grcf server`: `grcf` hands its job to the server that $GRCF_SERVER names.

Kept free of heavy imports (as is grcf.cli): a served job costs the client ~0.05 s of start-up
instead of importing torch and the rest (~2.7 s). A job the server refuses (grcf.pipeline.server.refusal)
or a server that does not answer: the job runs in the client's own process, with a note.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys

ENV = "GRCF_SERVER"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def request(argv) -> dict:
    import grcf

    return {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
            "nice": os.nice(0), "python": os.path.realpath(sys.executable),
            "package": os.path.dirname(os.path.realpath(grcf.__file__))}


def run_on_server(path: str, argv) -> int | None:
    """The job's exit status, or None where the server did not take it (the caller runs it here)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as e:
        print(f"grcf: ${ENV}={path}: no server answers ({e.strerror or e}); running in this process", file=sys.stderr)
        conn.close()
        return None
    fds = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    try:
        send_request(conn, request(argv), fds)
        reply = _recv_exact(conn, 1)
    except OSError as e:
        reply = b"R" + f"sending the job failed: {e}".encode()
    if reply != b"A":  # refused: b"R" + the reason; or gone
        if reply == b"R":
            try:
                reply += conn.recv(4096)
            except OSError:
                pass
        reason = reply[1:].decode(errors="replace") if reply else "the server closed the connection"
        print(f"grcf: server {path} did not take this job ({reason}); running in this process", file=sys.stderr)
        conn.close()
        return None
    forwarded = []

    def forward(signum, _frame):
        forwarded.append(signum)
        try:
            conn.sendall(b"K" + bytes([signum]))
        except OSError:
            pass

    for s in FORWARDED:
        signal.signal(s, forward)
    status = _recv_exact(conn, 5)
    if len(status) == 5 and status[:1] == b"X":
        return struct.unpack("!i", status[1:])[0]
    if forwarded:  # killed by the signal we passed on, as a shell reports it
        return 128 + forwarded[-1]
    print(f"grcf: the job's process on server {path} ended without an exit status (killed?)", file=sys.stderr)
    return 1


def send_request(conn, req: dict, fds: list[int]) -> None:
    """The wire format of a job (client -> server, server -> warm process): its length, with the file
    descriptors attached, then the JSON request."""
    body = json.dumps(req).encode()
    conn.sendmsg([struct.pack("!Q", len(body))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
    conn.sendall(body)


def read_request(conn, nfds: int) -> tuple[dict, list[int]]:
    """What send_request sent: (request, the `nfds` file descriptors, now ours); ValueError at end of stream."""
    fds = array.array("i")
    msg, anc, _flags, _addr = conn.recvmsg(8, socket.CMSG_SPACE(nfds * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(msg) != 8 or len(fds) != nfds:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected a length and {nfds} file descriptors" if msg else "end of stream")
    (size,) = struct.unpack("!Q", msg)
    body = _recv_exact(conn, size)
    if len(body) != size:
        for fd in fds:
            os.close(fd)
        raise ValueError("connection closed mid-request")
    return json.loads(body), list(fds)


def _recv_exact(conn, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
