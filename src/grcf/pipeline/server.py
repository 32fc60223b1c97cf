"""`grcf server`: warm processes that have imported torch and grcf once and fork one child per job.

A pipeline job is a few seconds of training behind ~2.7 s of `import torch`; on a laptop the
pipeline's many short jobs pay that import again and again. With a server running and
$GRCF_SERVER naming its socket, the `grcf` command (grcf.pipeline.client) passes its arguments, working
directory, environment and standard streams to the server, which has a child forked from a warm
process run the command as a fresh process would (same code, same seeds: the same bytes), and
passes back the exit status.

Two levels:
- the *server* (what `grcf server start` starts) imports nothing heavy; it takes each request
  and hands it to the warm process for the request's import-time environment, starting one on
  first need (~3 s, paid once);
- a *warm process* was started with that environment, imported torch and grcf, and forks one child
  per job. Variables read once at import (thread counts, which Snakemake sets per job from the
  rule's `threads`; library paths; PYTHONPATH) are the warm process's own, so a job gets exactly
  what a fresh process with its environment would get.

Safety:
- A warm process never runs torch code itself, so no OpenMP thread pool exists when it forks.
- grcf's source is checked before every job: once it has changed, the warm processes (stale
  modules) are stopped and fresh ones started.
- A job from another Python or grcf installation, or inside a Slurm allocation the server is not
  part of (it would escape the allocation's limits), is refused and runs in its own process.
- The child follows its client: a signal sent to the client (Ctrl-C, Snakemake or Slurm cancelling
  a job) is passed on, and a client that dies (even by SIGKILL) takes its child with it.

For one machine (a laptop, an interactive node); on a cluster each job runs in its own process.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from grcf.pipeline.client import read_request, send_request
from grcf.errors import GrcfError

# read once at import by torch, OpenMP/BLAS, the dynamic linker or Python itself
IMPORT_TIME = ("OMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "VECLIB_", "NUMEXPR_", "TORCH_", "PYTORCH_", "CUDA_",
               "NVIDIA_", "LD_", "PYTHON", "MALLOC_", "JEMALLOC_", "ARROW_")
PRELOAD = ("torch", "numpy", "pandas", "pyarrow.parquet", "yaml", "grcf.training.train", "grcf.training.model",
           "grcf.training.losses", "grcf.data.store", "grcf.data.tensor_cache", "grcf.training.evaluate", "grcf.results.summarize")


def source_fingerprint(package: Path) -> tuple:
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in package.rglob("*.py")))


def import_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME)}


def entry_function(entry: str):
    """`module:function`, imported: what each job runs with its argv (the command line hands it over,
    so this layer never imports the command line)."""
    import importlib

    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)


class Server:
    def __init__(self, path: Path, entry: str):
        self.path = Path(path).absolute()
        self.entry = entry
        self.package = Path(__file__).resolve().parent.parent  # all of grcf: an edit anywhere restarts the warm processes
        self.fingerprint = source_fingerprint(self.package)
        self.env = dict(os.environ)
        self.python = os.path.realpath(sys.executable)
        self.warm: dict[str, tuple[subprocess.Popen, socket.socket]] = {}  # import-env key -> (process, channel)
        # + the channel's fd (the venv's python, unresolved)
        self.warm_cmd = [sys.executable, "-m", "grcf.pipeline.server", "--warm", "--entry", entry]

    def refusal(self, req: dict) -> str | None:
        """Why no warm process may run the request (None: one may)."""
        if req["python"] != self.python or req["package"] != str(self.package):
            return f"it runs {req['python']} with grcf from {req['package']}; the server {self.python}, {self.package}"
        if req["env"].get("SLURM_JOB_ID") != self.env.get("SLURM_JOB_ID"):
            return f"it runs in Slurm job {req['env'].get('SLURM_JOB_ID')}, outside the server's allocation"
        return None

    def source_changed(self) -> bool:
        now = source_fingerprint(self.package)
        changed, self.fingerprint = now != self.fingerprint, now
        return changed

    def serve(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        listener.bind(str(tmp))
        os.chmod(tmp, 0o600)
        listener.listen(64)
        os.replace(tmp, self.path)  # appears only when ready to serve
        atexit.register(self.shutdown)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # warm processes are reaped by the kernel
        _say(f"ready on {self.path} (pid {os.getpid()})")
        while True:
            conn, _ = listener.accept()
            try:
                req, fds = read_request(conn, nfds=3)
            except (OSError, ValueError) as e:
                _say(f"bad request ({e})")
                conn.close()
                continue
            try:
                why = self.refusal(req)
                if why is not None:
                    _say(f"refused grcf {' '.join(req['argv'])}: {why}")
                    conn.sendall(b"R" + why.encode())
                    continue
                if self.source_changed() and self.warm:
                    _say("grcf's source changed: stopping the warm processes (stale modules); fresh ones start on demand")
                    self.stop_warm()
                self.hand_over(req, conn, fds)
            except OSError as e:  # the client went away meanwhile
                _say(f"request dropped ({e})")
            finally:
                conn.close()
                for fd in fds:
                    os.close(fd)

    def hand_over(self, req: dict, conn, fds: list[int]) -> None:
        """Send the request, the client's connection and its streams to the warm process for its environment."""
        env = import_env(req["env"])
        key = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:12]
        for attempt in (1, 2):
            if key not in self.warm:
                self.warm[key] = self.start_warm(env, key)
            proc, channel = self.warm[key]
            try:
                send_request(channel, req, [conn.fileno(), *fds])
                return
            except OSError:  # it died: start another once
                _say(f"warm process {proc.pid} is gone")
                self.warm.pop(key)
                if attempt == 2:
                    raise

    def start_warm(self, env: dict, key: str) -> tuple[subprocess.Popen, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        base = {k: v for k, v in self.env.items() if not k.startswith(IMPORT_TIME)}
        proc = subprocess.Popen([*self.warm_cmd, str(theirs.fileno())],
                                env={**base, **env}, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if not k.startswith("LD_")) or "no import-time variables"
        _say(f"warm process {proc.pid} [{key}] started for {shown}")
        return proc, ours

    def stop_warm(self) -> None:
        for proc, channel in self.warm.values():
            channel.close()  # its end reads EOF and it exits; the jobs it forked run on
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
        self.warm.clear()

    def shutdown(self) -> None:
        self.stop_warm()
        try:
            if self.path.exists() and self.path.is_socket():
                self.path.unlink()
        except OSError:
            pass


def warm_process(channel_fd: int, entry: str) -> None:
    """Import once, then fork a child per request the server sends over the channel."""
    for name in PRELOAD:
        __import__(name)
    run = entry_function(entry)
    channel = socket.socket(fileno=channel_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        try:
            req, fds = read_request(channel, nfds=4)
        except ValueError:  # EOF: the server stopped
            os._exit(0)
        conn_fd, stdio = fds[0], fds[1:]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            channel.close()
            _run_child(socket.socket(fileno=conn_fd), req, stdio, run)  # never returns
        _say(f"job {pid}: grcf {' '.join(req['argv'])} (in {req['cwd']})")
        for fd in fds:
            os.close(fd)


def _say(msg: str) -> None:
    print(f"grcf server: {msg}", flush=True)


def _run_child(conn, req: dict, fds: list[int], run) -> None:
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


def start(path: Path, entry: str, wait: float = 60.0) -> int:
    """Start a server in the background (detached) and wait until it serves; its pid."""
    path = Path(path).absolute()
    if len(os.fsencode(path)) + 16 > 107:  # AF_UNIX paths hold 107 bytes (and the server binds a longer temporary name)
        raise GrcfError(f"socket path {path} is too long for a Unix socket; choose a shorter --socket")
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
        proc = subprocess.Popen([sys.executable, "-m", "grcf.pipeline.server", "--entry", entry, str(path)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise GrcfError(f"the server did not start (see {log})")
        time.sleep(0.05)
    return proc.pid


def stop(path: Path) -> bool:
    """Stop the server on `path` (and its warm processes); False if none was running."""
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


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", action="store_true", help="a warm process: the argument is its channel's fd")
    ap.add_argument("--entry", required=True, help="module:function each job runs")
    ap.add_argument("target", help="the socket (server) or the channel fd (--warm)")
    a = ap.parse_args()
    if a.warm:
        warm_process(int(a.target), a.entry)
    else:  # the detached server
        sock = Path(a.target)
        sock.with_suffix(".pid").write_text(str(os.getpid()))
        Server(sock, a.entry).serve()
