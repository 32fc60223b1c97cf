"""`grcf server`: a warm process that has imported torch and grcf once and forks one child per job.

A pipeline job is a few seconds of training behind ~2.7 s of `import torch`; on a laptop the
pipeline's many short jobs pay that import again and again. With a server running and
$GRCF_SERVER naming its socket, the `grcf` command (grcf.client) passes its arguments, working
directory, environment and standard streams to the server, which forks a child that runs the
command as a fresh process would (same code, same seeds: the same bytes), and passes back the
exit status.

Safety:
- The server never runs torch code itself, so no OpenMP thread pool exists when it forks.
- A job whose environment differs from the server's in a variable read at import time (threads,
  library paths, PYTHONPATH, ...) or that comes from another Python or grcf installation is refused
  and runs in its own process; so is a job inside a Slurm allocation the server is not part of
  (it would escape the allocation's limits).
- grcf's source is checked before every job: once it has changed, the server refuses the job and
  exits (its modules are stale); start it again.
- The child follows its client: a signal sent to the client (Ctrl-C, Snakemake or Slurm cancelling
  a job) is passed on, and a client that dies (even by SIGKILL) takes its child with it.

For one machine only (a laptop, an interactive node); on a cluster each job runs in its own process.
"""

from __future__ import annotations

import array
import atexit
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from .errors import GrcfError

# read once at import by torch, OpenMP/BLAS, the dynamic linker or Python itself: a job must match the server
IMPORT_TIME = ("OMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "TORCH_", "PYTORCH_", "CUDA_", "NVIDIA_", "LD_",
               "PYTHON", "MALLOC_", "JEMALLOC_", "ARROW_")
PRELOAD = ("torch", "numpy", "pandas", "pyarrow.parquet", "yaml", "grcf.cli", "grcf.train", "grcf.model",
           "grcf.losses", "grcf.store", "grcf.tensor_cache", "grcf.evaluate", "grcf.summarize")


def source_fingerprint(package: Path) -> tuple:
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in package.rglob("*.py")))


class Server:
    def __init__(self, path: Path):
        self.path = Path(path).absolute()
        self.package = Path(__file__).resolve().parent
        self.fingerprint = source_fingerprint(self.package)
        self.env = dict(os.environ)
        self.python = os.path.realpath(sys.executable)

    def refusal(self, req: dict) -> str | None:
        """Why this server must not run the request (None: it may)."""
        if req["python"] != self.python or req["package"] != str(self.package):
            return f"it runs {req['python']} with grcf from {req['package']}; the server {self.python}, {self.package}"
        keys = {k for k in (*req["env"], *self.env) if k.startswith(IMPORT_TIME)}
        if diff := sorted(k for k in keys if req["env"].get(k) != self.env.get(k)):
            return f"its environment differs from the server's in {', '.join(diff)}"
        if req["env"].get("SLURM_JOB_ID") != self.env.get("SLURM_JOB_ID"):
            return f"it runs in Slurm job {req['env'].get('SLURM_JOB_ID')}, outside the server's allocation"
        if source_fingerprint(self.package) != self.fingerprint:
            return "grcf's source changed since the server started; the server stops (start it again)"
        return None

    def serve(self) -> None:
        for name in PRELOAD:
            __import__(name)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        listener.bind(str(tmp))
        os.chmod(tmp, 0o600)
        listener.listen(64)
        os.replace(tmp, self.path)  # appears only when ready to serve
        atexit.register(self._remove_socket)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        print(f"grcf server: ready on {self.path} (pid {os.getpid()})", flush=True)
        while True:
            conn, _ = listener.accept()
            try:
                req, fds = _read_request(conn)
            except (OSError, ValueError) as e:
                print(f"grcf server: bad request ({e})", file=sys.stderr, flush=True)
                conn.close()
                continue
            why = self.refusal(req)
            if why is not None:
                print(f"grcf server: refused grcf {' '.join(req['argv'])}: {why}", flush=True)
                conn.sendall(b"R" + why.encode())
                conn.close()
                for fd in fds:
                    os.close(fd)
                if "source changed" in why:
                    sys.exit(0)
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                atexit.unregister(self._remove_socket)  # the socket is the server's, not the job's
                _run_child(conn, req, fds)  # never returns
            print(f"grcf server: job {pid}: grcf {' '.join(req['argv'])} (in {req['cwd']})", flush=True)
            conn.close()
            for fd in fds:
                os.close(fd)

    def _remove_socket(self):
        try:
            if self.path.exists() and self.path.is_socket():
                self.path.unlink()
        except OSError:
            pass


def _read_request(conn) -> tuple[dict, list[int]]:
    fds = array.array("i")
    msg, anc, _flags, _addr = conn.recvmsg(8, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(msg) != 8 or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("expected a length and three file descriptors")
    (size,) = struct.unpack("!Q", msg)
    body = b""
    while len(body) < size:
        chunk = conn.recv(min(1 << 20, size - len(body)))
        if not chunk:
            raise ValueError("connection closed mid-request")
        body += chunk
    return json.loads(body), list(fds)


def _run_child(conn, req: dict, fds: list[int]) -> None:
    """In the forked child: become the client's process (streams, cwd, env), run the command, report."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess needs to wait for its children
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()  # own process group: the job's subprocesses are signalled with it, not with the server
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=os.isatty(1))
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.umask(req["umask"])
        if req["nice"] > os.nice(0):
            os.nice(req["nice"] - os.nice(0))
        sys.argv = ["grcf", *req["argv"]]
        threading.Thread(target=_follow_client, args=(conn,), daemon=True).start()
        conn.sendall(b"A")
        from .cli import run

        code = int(run(req["argv"]) or 0)
    except SystemExit as e:  # argparse's --help and errors, sys.exit in a command
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # what a process's normal exit would run
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(b"X" + struct.pack("!i", code))
        finally:
            os._exit(code)


def _follow_client(conn) -> None:
    """Signals the client passes on reach this process; the client's end of the socket closing kills it."""
    while True:
        try:
            msg = conn.recv(2)
        except OSError:
            msg = b""
        if len(msg) == 2 and msg[:1] == b"K":
            os.kill(os.getpid(), msg[1])
            continue
        os.kill(os.getpid(), signal.SIGKILL)


def start(path: Path, wait: float = 60.0) -> int:
    """Start a server in the background (detached) and wait until it serves; its pid."""
    import subprocess

    path = Path(path).absolute()
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise GrcfError(f"a server already answers on {path} (`grcf server stop --socket {path}`)")
        except ConnectionRefusedError:
            path.unlink()  # left by a server that died
        finally:
            probe.close()
    log = path.with_suffix(".log")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grcf.server", str(path)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise GrcfError(f"the server did not start (see {log})")
        time.sleep(0.05)
    return proc.pid


def stop(path: Path) -> bool:
    """Stop the server on `path`; False if none was running."""
    path = Path(path).absolute()
    if not path.exists():
        return False
    pidfile = path.with_suffix(".pid")
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 10
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    pidfile.unlink(missing_ok=True)
    return True


if __name__ == "__main__":  # python -m grcf.server SOCKET: the detached server process
    sock = Path(sys.argv[1])
    sock.with_suffix(".pid").write_text(str(os.getpid()))
    Server(sock).serve()
