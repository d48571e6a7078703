"""Running the outboxd binary under test: path, a sanitized environment, configs."""

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

from .util import REPO_ROOT, register_child, set_pdeathsig, unregister_child

_DROP_PREFIXES = ("AWS_", "OUTBOXD_")
_DROP_NAMES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}


def outboxd_path():
    """$BUILD (default "build", relative to the repo root) + /outboxd, absolute."""
    build = Path(os.environ.get("BUILD") or "build")
    if not build.is_absolute():
        build = REPO_ROOT / build
    return build / "outboxd"


def outboxd_env(extra=None, home=None):
    """The environment outboxd runs with in tests.

    No AWS_* or OUTBOXD_* from the caller, no proxies, no instance metadata lookups,
    no ~/.aws files: nothing can reach past loopback or pick up real credentials.
    `extra` is merged last; a value of None removes that variable.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROP_PREFIXES) and k.lower() not in _DROP_NAMES}
    nowhere = str(Path(home or "/nonexistent") / ".aws-none")
    env.update({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": nowhere + "/config",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere + "/credentials",
        "NO_PROXY": "*",
        "no_proxy": "*",
        "LC_ALL": "C.UTF-8",
    })
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def write_config(directory, content, name="outboxd.yaml", dedent=True):
    """Write an outboxd YAML config into directory; content is a dict or YAML text.

    Text is dedented (so triple-quoted blocks can be indented in the test) and a leading
    newline is dropped; pass dedent=False to keep it byte for byte.
    """
    path = Path(directory) / name
    if isinstance(content, (dict, list)):
        import yaml
        text = yaml.safe_dump(content, sort_keys=False, default_flow_style=False)
    else:
        text = str(content)
        if dedent:
            text = textwrap.dedent(text)
            if text.startswith("\n"):
                text = text[1:]
    path.write_text(text)
    return path


def run_outboxd_cmd(binary, *args, env=None, timeout=60, input=None, cwd=None, home=None):
    """Run outboxd to completion; CompletedProcess with text stdout/stderr."""
    return subprocess.run([str(binary), *map(str, args)], env=outboxd_env(env, home),
                          input=input, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


class OutboxdProcess:
    """A long-running outboxd (e.g. `run -c FILE`), output to a log file."""

    def __init__(self, binary, *args, env=None, log_path, cwd=None, home=None):
        self.args = [str(binary), *map(str, args)]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env=outboxd_env(env, home), cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=set_pdeathsig(signal.SIGKILL))
        register_child(self)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=None):
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGTERM, timeout=35.0):
        """Send sig, wait up to timeout, then SIGKILL. Returns the exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            return self.proc.returncode
        finally:
            self._log.close()
            unregister_child(self)

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, needle, timeout=30.0):
        """Wait until needle appears in the log; True, or False on timeout/exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return True
            if self.proc.poll() is not None:
                return needle in self.output()
            time.sleep(0.05)
        return False
