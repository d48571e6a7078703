"""The Debian package (`make deb`, SPEC §7): lintian clean; installed, it has the
binary, the unit, the man pages, /etc/outboxd/outboxd.yaml as a conffile and the
system user; the installed binary relays as that user; purge removes it all.

systemd is not PID 1 where the suite runs, so "start" is the installed
/usr/bin/outboxd run as the `outboxd` user the way the unit would (User=outboxd).
Root only; the package is built once per module and purged at its end, also when
a test fails, so the machine is left as it was."""

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import REPO_ROOT, OutboxdProcess
from outboxd_config import aws_section
from relay_util import produce, wait_until

TOOLS = ("dpkg-buildpackage", "dh", "lintian", "man", "setpriv", "systemd-sysusers", "userdel")
FILES = ("/usr/bin/outboxd", "/lib/systemd/system/outboxd.service", "/usr/lib/sysusers.d/outboxd.conf",
         "/usr/share/man/man8/outboxd.8.gz", "/usr/share/man/man5/outboxd.yaml.5.gz",
         "/usr/share/doc/outboxd/README.md", "/usr/share/doc/outboxd/copyright",
         "/usr/share/doc/outboxd/CONFIGURATION.md", "/etc/outboxd/outboxd.yaml")
CONF = "/etc/outboxd/outboxd.yaml"


def sh(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def package_installed():
    p = sh("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "outboxd")
    return p.returncode == 0 and p.stdout.startswith("ii")


def user_exists(name="outboxd"):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name="outboxd"):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def why_not():
    if os.geteuid() != 0:
        return "needs root (dpkg -i, a system user)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)} (make deps installs them)"
    if package_installed() or sh("dpkg-query", "-W", "outboxd").returncode == 0:
        return "a package outboxd is already on this machine: the test would replace it"
    if user_exists() or group_exists():
        return "a user or group outboxd already exists: purging the package would delete it"
    return None


pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


def purge():
    p = sh("dpkg", "--purge", "outboxd")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """The .deb `make deb` builds (once per module); purged at the end of the module."""
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    p = sh("make", "--no-print-directory", "deb", f"DEB_DIR={out}", cwd=REPO_ROOT, timeout=900)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    debs = sorted(out.glob("outboxd_*.deb"))
    assert len(debs) == 1, list(out.iterdir())
    print(f"make deb took {took:.0f} s")
    try:
        yield debs[0]
    finally:
        leave_machine_as_it_was()


def leave_machine_as_it_was():
    """Purge, and remove what a failed purge left (why_not made sure none of it was there before)."""
    if sh("dpkg-query", "-W", "outboxd").returncode == 0:
        sh("dpkg", "--purge", "--force-all", "outboxd")
    if user_exists():
        sh("userdel", "outboxd")
    if group_exists():
        sh("groupdel", "outboxd")
    for d in ("/etc/outboxd", "/var/lib/outboxd", "/var/log/outboxd"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def installed(deb):
    if not package_installed():
        p = sh("dpkg", "-i", str(deb))
        assert p.returncode == 0, p.stdout + p.stderr
    return deb


def version():
    return (REPO_ROOT / "VERSION").read_text().strip()


def test_package_is_lintian_clean(deb):
    p = sh("lintian", "--fail-on", "error,warning", str(deb), timeout=600)
    tags = [x for x in p.stdout.splitlines() if x[:2] in ("E:", "W:")]
    assert p.returncode == 0 and not tags, p.stdout + p.stderr


def test_package_version_is_the_one_outboxd_prints(deb):
    assert sh("dpkg-deb", "-f", str(deb), "Version").stdout.strip().rsplit("-", 1)[0] == version()


def test_install_puts_binary_unit_man_pages_docs_conffile_and_system_user(installed):
    for f in FILES:
        assert os.path.isfile(f), f
    assert sh("/usr/bin/outboxd", "--version").stdout == f"outboxd {version()}\n"
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "outboxd").stdout
    assert CONF in conffiles, conffiles
    text = Path(CONF).read_text()
    assert text.startswith("# /etc/outboxd/outboxd.yaml") and "table.name" in text.split("\n\n")[0]
    user = pwd.getpwnam("outboxd")
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin"), user
    assert grp.getgrgid(user.pw_gid).gr_name == "outboxd"
    for page in ("/usr/share/man/man8/outboxd.8.gz", "/usr/share/man/man5/outboxd.yaml.5.gz"):
        p = sh("man", "--warnings", "-l", page, env={**os.environ, "MANWIDTH": "80"})
        assert p.returncode == 0 and p.stderr == "" and "SEE ALSO" in p.stdout, (page, p.stderr)


def test_installed_config_passes_check_as_the_outboxd_user(installed):
    p = sh("setpriv", "--reuid=outboxd", "--regid=outboxd", "--init-groups",
           "/usr/bin/outboxd", "check", "-c", CONF, env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"configuration {CONF} is valid"), p.stdout


@pytest.fixture
def outboxd_dir():
    """A directory the outboxd user can read (pytest's are root's alone), with out/ its own to write."""
    d = Path(tempfile.mkdtemp(prefix="outboxd-deb-"))
    d.chmod(0o755)
    out = d / "out"
    out.mkdir()
    user = pwd.getpwnam("outboxd")
    os.chown(out, user.pw_uid, user.pw_gid)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_installed_outboxd_relays_as_the_outboxd_user(installed, ddb, table, outboxd_dir, tmp_path):
    events = outboxd_dir / "out" / "events.jsonl"
    cfg = outboxd_dir / "outboxd.yaml"
    cfg.write_text(aws_section(ddb.endpoint) + f"table:\n  name: {table}\nleases:\n  table: {table}-leases\n"
                   "  instance_id: deb-test\nstream:\n  poll_interval: 100ms\n"
                   f"sinks:\n  - name: out\n    type: file\n    path: {events}\n")
    cfg.chmod(0o644)
    d = OutboxdProcess("setpriv", "--reuid=outboxd", "--regid=outboxd", "--init-groups",
                       "/usr/bin/outboxd", "run", "-c", cfg, log_path=tmp_path / "outboxd.log", home=tmp_path)
    try:
        produce(ddb.endpoint, table, 20, 4)
        assert wait_until(lambda: events.exists() and len(events.read_text().splitlines()) >= 20, 60), d.output()
        assert os.stat(events).st_uid == pwd.getpwnam("outboxd").pw_uid
        with open(f"/proc/{d.pid}/status") as f:
            uid = next(x for x in f if x.startswith("Uid:")).split()[1]
        assert int(uid) == pwd.getpwnam("outboxd").pw_uid
    finally:
        rc = d.stop(signal.SIGTERM, timeout=30)
    assert rc == 0, d.output()
    assert len(events.read_text().splitlines()) == 20


def test_purge_removes_files_conffile_and_user(installed):
    purge()
    for f in FILES:
        assert not os.path.exists(f), f
    assert not os.path.exists("/etc/outboxd")
    assert not user_exists() and not group_exists()
    assert sh("dpkg-query", "-W", "outboxd").returncode != 0
