"""packaging/outboxd.service: its hardening, measured, and outboxd running under it; and
outboxd's log lines in the journal (the priority prefixes `journalctl -p` selects by).

What runs where:

- The exposure score (`systemd-analyze security --offline=yes`, at most 2.0) and
  `systemd-analyze verify` (with a temporary root holding the binary and this machine's
  units, so the check for ExecStart's program and the start transaction work offline)
  need no running systemd.
- Where systemd is PID 1, outboxd runs as a transient unit with the unit's own [Service]
  settings (`systemd-run`) and relays. The sandbox these tests run in has no systemd, so
  that test is skipped here.
- Everywhere (as root), outboxd relays (DynamoDB Local, a file sink, the operations
  server) and its Kafka producer and TLS client publish (sink_publish to librdkafka's mock
  cluster and to an HTTPS receiver) under the parts of the unit's sandbox that apply
  without systemd: the unit's system call filter (its SystemCallFilter= lines expanded with
  the sets `systemd-analyze syscall-filter` prints, native architecture only; a call outside
  them kills the process, where the unit answers EPERM), MemoryDenyWriteExecute= and
  RestrictAddressFamilies= as seccomp filters the way systemd builds them, no capabilities
  (bounding and inheritable sets empty) and no new privileges, a user id that is not root,
  the unit's UMask= and its LimitNOFILE= (capped at this machine's hard limit when that is
  lower). Names resolve through the system's resolver (`localhost`), with AF_NETLINK
  refused as under the unit.
  Not covered there: the mount namespace (ProtectSystem=, ProtectHome=, PrivateTmp=,
  PrivateDevices=, ProtectProc=, the State/LogsDirectory=), the user namespace
  (PrivateUsers=), DynamicUser='s user, the device policy, the filters systemd adds for
  RestrictNamespaces=, RestrictRealtime=, RestrictSUIDSGID=, LockPersonality= and
  ProtectClock= (outboxd makes none of those calls), the watchdog and notify settings;
  only the systemd-run test runs those.
"""

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from harness import REPO_ROOT, OutboxdProcess, outboxd_env, write_config
from harness.outboxd import outboxd_path
from harness import unit_sandbox
from harness.util import self_signed_cert
from outboxd_config import tool, tool_env
from relay_util import (free_port, http_sink, lines_of, probe, produce, relay_config, scan_items,
                        wait_until, with_relay)

UNIT = REPO_ROOT / "packaging" / "outboxd.service"
SETTINGS = unit_sandbox.unit_service_settings(UNIT)
# A user id of the range DynamicUser= allocates from: not root, owning nothing here.
SANDBOX_UID = 61184


def systemd_analyze(*args):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    return subprocess.run(["systemd-analyze", "--no-pager", *args], capture_output=True, text=True,
                          timeout=60)


def test_the_units_exposure_is_at_most_2():
    p = systemd_analyze("security", "--offline=yes", str(UNIT))
    m = re.search(r"Overall exposure level for outboxd\.service: (\d+\.\d+)", p.stdout)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 2.0, p.stdout


def test_the_unit_verifies_clean(outboxd_bin, tmp_path):
    units = next((d for d in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if (d / "multi-user.target").exists()), None)
    if units is None:
        pytest.skip("this machine has no systemd units to verify against")
    root = tmp_path / "root"
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy(outboxd_bin, root / "usr/bin/outboxd")
    (root / "bin").mkdir()
    shutil.copy(shutil.which("kill"), root / "bin/kill")
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/outboxd.service")
    p = systemd_analyze("verify", "--man=no", f"--root={root}", "outboxd.service")
    # verify exits 0 on unknown keys and bad values: it only says so.
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


def test_the_unit_gives_up_on_a_configuration_error_and_outwaits_the_drain():
    assert "78" in " ".join(SETTINGS["RestartPreventExitStatus"]).split()
    # relay.shutdown_timeout is 30 s by default.
    assert int(SETTINGS["TimeoutStopSec"][-1].rstrip("s")) > 30
    assert SETTINGS["Type"] == ["notify"] and SETTINGS["WatchdogSec"]


class Sandbox:
    """The parts of the unit's sandbox that apply without systemd (see the module's
    docstring), around a program: a directory its user owns, for its files, and the
    command line that runs a program there."""

    def __init__(self):
        if os.geteuid() != 0:
            pytest.skip("needs root to run outboxd as another user")
        if not unit_sandbox.available():
            pytest.skip("needs libseccomp.so.2, setpriv, prlimit and systemd-analyze")
        if b"__asan_init" in outboxd_path().read_bytes():
            pytest.skip("an AddressSanitizer build: its leak check at exit needs ptrace, which the unit forbids")
        self.dir = Path(tempfile.mkdtemp(prefix="outboxd-unit-"))
        os.chown(self.dir, SANDBOX_UID, SANDBOX_UID)
        self.umask = int(SETTINGS["UMask"][-1], 8)
        spec = {"syscalls": sorted(unit_sandbox.allowed_syscalls(SETTINGS["SystemCallFilter"])),
                "mdwe": SETTINGS["MemoryDenyWriteExecute"] == ["yes"],
                "families": SETTINGS["RestrictAddressFamilies"][-1].split()}
        self.spec = self.dir / "sandbox.json"
        self.spec.write_text(json.dumps(spec))

    def command(self, *argv):
        nofile = min(int(SETTINGS["LimitNOFILE"][-1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        return ["prlimit", f"--nofile={nofile}:{nofile}", "--",
                "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
                sys.executable, unit_sandbox.__file__, str(self.spec), *map(str, argv)]

    def write(self, name, text):
        path = write_config(self.dir, text, name=name, dedent=False)
        os.chmod(path, 0o644)
        return path

    def start(self, fn):
        """fn() started with the unit's umask (processes inherit it)."""
        old = os.umask(self.umask)
        try:
            return fn()
        finally:
            os.umask(old)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sandbox():
    box = Sandbox()
    try:
        yield box
    finally:
        box.remove()


def test_outboxd_relays_under_the_units_syscall_filter_without_privileges(ddb, table, outboxd_bin, tmp_path,
                                                                           sandbox):
    port = free_port()
    out = sandbox.dir / "out.jsonl"
    text = relay_config(ddb.endpoint.replace("127.0.0.1", "localhost"), table,
                        f"  - name: out\n    type: file\n    path: {out}\n", default_sink="out")
    cfg = sandbox.write("outboxd.yaml", text + f"metrics:\n  listen: localhost:{port}\n")
    relay = sandbox.start(lambda: OutboxdProcess(*sandbox.command(outboxd_bin, "run", "-c", cfg),
                                                 log_path=tmp_path / "sandboxed.log", home=sandbox.dir))
    try:
        assert relay.wait_for_output("reading the stream", 60), relay.output()
        produce(ddb.endpoint, table, 20, 4)
        assert wait_until(lambda: len(lines_of(out)) == 20, 60), relay.output()
        assert probe(port, "/healthz")[0] == 200, relay.output()
        assert relay.stop(timeout=30) == 0, relay.output()
        assert wait_until(lambda: sum(i.get("isPublished", {}).get("BOOL") is True
                                      for i in scan_items(ddb, table)) == 20, 30)
        assert out.stat().st_mode & 0o777 == 0o666 & ~sandbox.umask
        assert out.stat().st_uid == SANDBOX_UID
    finally:
        relay.stop(timeout=10)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def test_librdkafka_and_openssl_publish_under_the_units_sandbox(sandbox, kafka_mock, self_signed):
    """The libraries the relay test above does not reach: a Kafka producer and a TLS
    client, both under MemoryDenyWriteExecute= and the system call filter."""
    from harness.http_receiver import HttpReceiver
    kafka_mock.create_topic("sandboxed", 2)
    shutil.copy(self_signed[0], sandbox.dir / "ca.pem")
    rx = HttpReceiver(certfile=str(self_signed[0]), keyfile=str(self_signed[1])).start()
    try:
        sinks = {"kafka": {"type": "kafka", "brokers": kafka_mock.bootstraps, "topic": "sandboxed"},
                 "https": {"type": "http", "url": rx.url + "/hook", "ca_file": str(sandbox.dir / "ca.pem")}}
        for name, sink in sinks.items():
            cfg = sandbox.write(f"{name}.yaml", yaml.safe_dump({
                "aws": {"region": "us-east-1", "endpoint": "http://127.0.0.1:1", "access_key_id": "AKIDTEST",
                        "secret_access_key": "testsecret"},
                "table": {"name": "outbox"}, "sinks": [{"name": "s", **sink}], "default_sink": "s"}))
            lines = "".join(json.dumps({"pk": f"k{i}", "sk": f"m{i}", "payload_b64": "e30="}) + "\n"
                            for i in range(5))
            p = sandbox.start(lambda: subprocess.run(sandbox.command(tool("sink_publish"), cfg, "s"), input=lines,
                                                     capture_output=True, text=True, env=tool_env(), timeout=60))
            results = [json.loads(x)["result"] for x in p.stdout.splitlines() if '"result"' in x]
            assert p.returncode == 0 and results == ["ack"] * 5, (name, p.returncode, p.stdout, p.stderr)
    finally:
        rx.stop()
    assert len(kafka_mock.consume("sandboxed", want=5, timeout=30)) == 5


def systemd_run_properties():
    """The unit's [Service] settings as systemd-run properties, less what the test gives
    itself (the command lines, the environment file)."""
    skip = {"ExecStartPre", "ExecStart", "ExecReload", "EnvironmentFile"}
    return [f"--property={k}={v}" for k, values in SETTINGS.items() if k not in skip for v in values]


def test_outboxd_relays_as_a_transient_unit_with_the_units_settings(ddb, table, outboxd_bin, http_receiver):
    if not os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is not PID 1 here (no /run/systemd/system): no transient unit can run")
    d = Path(tempfile.mkdtemp(prefix="outboxd-unit-"))
    os.chmod(d, 0o755)
    cfg = write_config(d, relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url),
                                       default_sink="hook"))
    os.chmod(cfg, 0o644)
    name = f"outboxd-test-{os.getpid()}"
    p = subprocess.run(["systemd-run", f"--unit={name}", "--collect", *systemd_run_properties(),
                        f"--property=BindReadOnlyPaths={d}", "--setenv=AWS_EC2_METADATA_DISABLED=true",
                        "--", str(outboxd_bin), "run", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    try:
        produce(ddb.endpoint, table, 20, 4)
        assert wait_until(lambda: len(http_receiver.accepted()) >= 20, 60)

        def state():
            return subprocess.run(["systemctl", "show", "--property=ActiveState,SubState", "--value", name],
                                  capture_output=True, text=True).stdout.split()
        assert state() == ["active", "running"]
    finally:
        subprocess.run(["systemctl", "stop", name], capture_output=True, timeout=90)
        shutil.rmtree(d, ignore_errors=True)


# ---- journald priority prefixes ----

PRIORITIES = {"error": "3", "warn": "4", "info": "6", "debug": "7"}


def log_with_journal_stream(ddb, table, outboxd_bin, tmp_path, names_stderr):
    """Runs outboxd (log.level debug) with JOURNAL_STREAM naming its stderr's file or
    another, with a message for a sink nobody listens for (a warning, then a debug line a
    retry) and a reload that fails (an error); returns its log lines."""
    dead = f"http://127.0.0.1:{free_port()}/hook"
    cfg = write_config(tmp_path, with_relay(relay_config(ddb.endpoint, table, http_sink("hook", dead),
                                                         default_sink="hook", log_level="debug"),
                                            shutdown_timeout="2s"))
    log = tmp_path / "stderr.log"
    log.touch()
    named = log if names_stderr else cfg
    st = named.stat()
    produce(ddb.endpoint, table, 1, 1)
    relay = OutboxdProcess(outboxd_bin, "run", "-c", cfg, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
                           log_path=log, home=tmp_path)
    try:
        assert relay.wait_for_output("delivery failed (attempt 2", 60), relay.output()
        cfg.write_text("table: [\n")
        relay.send_signal(signal.SIGHUP)
        assert relay.wait_for_output("keeping the running configuration", 30), relay.output()
    finally:
        relay.stop(timeout=30)
    return log.read_text().splitlines()


def test_log_lines_to_the_journal_start_with_their_syslog_priority(ddb, table, outboxd_bin, tmp_path):
    lines = log_with_journal_stream(ddb, table, outboxd_bin, tmp_path, names_stderr=True)
    seen = set()
    for line in lines:
        m = re.match(r"<(\d)>\S+ (error|warn|info|debug) ", line)
        assert m and m.group(1) == PRIORITIES[m.group(2)], line
        seen.add(m.group(2))
    assert seen == set(PRIORITIES), lines


def test_log_lines_have_no_prefix_when_the_journal_stream_is_another_file(ddb, table, outboxd_bin, tmp_path):
    lines = log_with_journal_stream(ddb, table, outboxd_bin, tmp_path, names_stderr=False)
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT\S+ (error|warn|info|debug) ", x) for x in lines), lines


def test_config_errors_of_check_in_the_journal_are_errors(outboxd_bin, tmp_path):
    """The unit's ExecStartPre: `journalctl -p err` shows why the service did not start."""
    cfg = write_config(tmp_path, "table:\n  name: outbox\n  bogus: 1\nsinks: 7\n")
    err = tmp_path / "stderr.log"
    with open(err, "w") as f:
        st = os.fstat(f.fileno())
        p = subprocess.run([str(outboxd_bin), "check", "-c", str(cfg)], stderr=f, stdout=subprocess.DEVNULL,
                           env=outboxd_env({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, tmp_path),
                           timeout=30)
    lines = err.read_text().splitlines()
    assert p.returncode == 78 and len(lines) >= 2, lines
    assert all(x.startswith(f"<3>{cfg}:") and ": error: " in x for x in lines), lines
