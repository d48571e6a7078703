"""Small helpers shared by the harness: ports, the per-run temp dir, paths."""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
TESTS_DIR = REPO_ROOT / "tests"

_run_dir = None
_run_dir_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    """Wait until something accepts TCP connections on host:port. True, or False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def run_dir():
    """The per-run temp dir (logs of emulators, proxies, daemons). Created on first use.

    $OUTBOXD_TEST_TMP chooses the parent. conftest removes it after a fully
    passing session and prints its path otherwise.
    """
    global _run_dir
    with _run_dir_lock:
        if _run_dir is None:
            parent = os.environ.get("OUTBOXD_TEST_TMP") or None
            if parent:
                os.makedirs(parent, exist_ok=True)
            _run_dir = Path(tempfile.mkdtemp(prefix="outboxd-it-", dir=parent))
        return _run_dir


def run_dir_if_created():
    return _run_dir


def remove_run_dir():
    global _run_dir
    with _run_dir_lock:
        if _run_dir is not None:
            shutil.rmtree(_run_dir, ignore_errors=True)
            _run_dir = None


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the ")" that closes the command name
    state = stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def processes_matching(*needles):
    """PIDs whose command line contains every needle (bytes or str)."""
    found = []
    bneedles = [n.encode() if isinstance(n, str) else n for n in needles]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd and all(n in cmd for n in bneedles) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def set_pdeathsig(sig):
    """preexec_fn: the child gets `sig` when the process that started it dies (Linux)."""
    import ctypes
    import signal as _signal

    def _fn():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:
            pass
        # do not inherit the parent's ignored SIGINT etc.
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    return _fn


# Processes started by the harness that must not outlive the interpreter.
_children = set()
_children_lock = threading.Lock()


def register_child(obj):
    with _children_lock:
        _children.add(obj)


def unregister_child(obj):
    with _children_lock:
        _children.discard(obj)


@atexit.register
def _stop_children():
    with _children_lock:
        objs = list(_children)
    for obj in objs:
        try:
            obj.stop()
        except Exception:
            pass


def raw_post(port, target, body=b"{}", timeout=5):
    """One HTTP/1.1 request on a fresh socket; returns (status, headers-bytes, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall((f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\n"
                   f"Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20200101/us-east-1/dynamodb/"
                   f"aws4_request, SignedHeaders=host, Signature=00\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, payload


def self_signed_cert(directory, name="127.0.0.1"):
    """A self-signed certificate (its own CA file) for `name`, an IP address or
    a DNS name: (cert path, key path) in directory."""
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    kind = "IP" if name.replace(".", "").isdigit() or ":" in name else "DNS"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={kind}:{name}"], check=True, capture_output=True)
    return cert, key
