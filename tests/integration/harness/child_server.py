"""A test server that is a child process on a loopback port (the broker emulators).

A subclass says how to start it (command(), env()) and when it is ready (ready(),
which raises or returns False until it answers). stop() then start() again brings it
back on the same port, as a broker outage and its end. The process dies with the test
run (PDEATHSIG, atexit), and its output goes to a log in the run's directory.

    class Kinesalite(ChildServer):
        name = "kinesalite"
        def command(self): return [NODE, KINESALITE, "--port", str(self.port)]
        def ready(self): return wait_port(self.port, 0.2)
"""

import http.client
import os
import signal
import subprocess
import time
from pathlib import Path

from .util import TESTS_DIR, free_port, pid_alive, register_child, run_dir, set_pdeathsig, unregister_child

NODE_MODULES = TESTS_DIR / "node_modules"
# Node 22 from the npm package `node` (fauxqs needs it; the machine's node may be older).
NODE = str(NODE_MODULES / ".bin" / "node")


class ChildServer:
    name = "server"

    def __init__(self, port=None, log_dir=None):
        self.port = port or free_port()
        self.log_dir = Path(log_dir) if log_dir else run_dir()
        self.log_path = self.log_dir / f"{self.name}-{self.port}.log"
        self.proc = None

    # -- what a subclass says --------------------------------------------------

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def ready(self):
        """True once the server answers; may raise OSError, ValueError or an
        http.client.HTTPException meanwhile (not listening, or not answering right yet)."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60.0):
        if self.proc is not None:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=str(self.log_dir), env=self.env(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=set_pdeathsig(signal.SIGKILL))
        register_child(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} during startup; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            try:
                if self.ready():
                    return
            except (OSError, ValueError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} on port {self.port} not ready after {timeout}s ({last}); "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            self.proc = None
            unregister_child(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None and pid_alive(self.proc.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{self.name} {self.endpoint} pid={self.proc.pid if self.proc else None}>"
