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
- Everywhere (as root), outboxd relays under the parts of the unit's sandbox that apply
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
  (PrivateUsers=), DynamicUser='s user, the device and namespace restrictions, the
  watchdog and notify settings; only the systemd-run test runs those.
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

from harness import REPO_ROOT, OutboxdProcess, outboxd_env, write_config
from harness import unit_sandbox
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


def relay_env_dir(owner):
    """A directory for the relay's config and file sink that the user owner may use."""
    d = Path(tempfile.mkdtemp(prefix="outboxd-unit-"))
    os.chown(d, owner, owner)
    return d


def relay_under_sandbox_config(ddb, table, d, metrics_port):
    text = relay_config(ddb.endpoint.replace("127.0.0.1", "localhost"), table,
                        f"  - name: out\n    type: file\n    path: {d}/out.jsonl\n",
                        default_sink="out")
    text += f"metrics:\n  listen: localhost:{metrics_port}\n"
    path = write_config(d, text)
    os.chmod(path, 0o644)
    return path


def test_outboxd_relays_under_the_units_syscall_filter_without_privileges(ddb, table, outboxd_bin, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run outboxd as another user")
    if not unit_sandbox.available():
        pytest.skip("needs libseccomp.so.2, setpriv and prlimit")
    spec = {"syscalls": sorted(unit_sandbox.allowed_syscalls(SETTINGS["SystemCallFilter"])),
            "mdwe": SETTINGS["MemoryDenyWriteExecute"] == ["yes"],
            "families": SETTINGS["RestrictAddressFamilies"][-1].split()}
    nofile = min(int(SETTINGS["LimitNOFILE"][-1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    d = relay_env_dir(SANDBOX_UID)
    spec_path = d / "sandbox.json"
    spec_path.write_text(json.dumps(spec))
    port = free_port()
    cfg = relay_under_sandbox_config(ddb, table, d, port)
    umask = int(SETTINGS["UMask"][-1], 8)
    old_umask = os.umask(umask)     # inherited through prlimit, setpriv and the sandbox's exec
    try:
        relay = OutboxdProcess(
            "prlimit", f"--nofile={nofile}:{nofile}", "--",
            "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
            sys.executable, unit_sandbox.__file__, spec_path, outboxd_bin, "run", "-c", cfg,
            log_path=tmp_path / "sandboxed.log", home=d)
    finally:
        os.umask(old_umask)
    try:
        assert relay.wait_for_output("reading the stream", 60), relay.output()
        produce(ddb.endpoint, table, 20, 4)
        out = d / "out.jsonl"
        assert wait_until(lambda: len(lines_of(out)) == 20, 60), relay.output()
        assert probe(port, "/healthz")[0] == 200, relay.output()
        assert relay.stop(timeout=30) == 0, relay.output()
        assert wait_until(lambda: sum(i.get("isPublished", {}).get("BOOL") is True
                                      for i in scan_items(ddb, table)) == 20, 30)
        assert out.stat().st_mode & 0o777 == 0o666 & ~umask
        assert out.stat().st_uid == SANDBOX_UID
    finally:
        relay.stop(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


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
