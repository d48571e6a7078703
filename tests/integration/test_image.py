"""The container image: `make image` builds it without a registry, its config is the one
packaging/Containerfile declares, and it relays from DynamoDB Local on a read-only root file
system as its non-root user. It runs under podman where this machine can run containers,
else its unpacked root file system runs under unshare + chroot (the line
"test_image: runs under ..." says which; OUTBOXD_IMAGE_RUNTIME=chroot forces the fallback)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from harness import REPO_ROOT, OutboxdProcess
from relay_util import lines_of, produce, relay_config, scan_items, wait_until

VERSION = (REPO_ROOT / "VERSION").read_text().strip()
CONFIG_DIR, VOLUME = "/etc/outboxd", "/var/lib/outboxd"
# Keep the test's relay off the network but for DynamoDB Local on loopback.
ENV = {"AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "*"}
# What makes the mirror unreachable, as apt says it in mmdebstrap's log.
MIRROR_DOWN = re.compile(r"Temporary failure resolving|Could not resolve|Failed to fetch|"
                         r"Could not connect|Network is unreachable")


def say(request, line):
    """A line in the test run's output, also under -q (past the output capture)."""
    plugins = request.config.pluginmanager
    tr, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if tr is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            tr.write_line(f"test_image: {line}")


class OciImage:
    """An image in an OCI layout: its config (the image config's "config" object)."""

    def __init__(self, layout, tag):
        self.layout, self.tag = layout, tag
        index = json.loads((layout / "index.json").read_text())
        entry = next(m for m in index["manifests"]
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
        manifest = json.loads(self.blob(entry["digest"]))
        self.config = json.loads(self.blob(manifest["config"]["digest"]))["config"]

    def blob(self, digest):
        algo, hexdigest = digest.split(":")
        return (self.layout / "blobs" / algo / hexdigest).read_text()

    @property
    def ref(self):
        return f"{self.layout}:{self.tag}"

    @property
    def uid_gid(self):
        uid, gid = self.config["User"].split(":")
        return int(uid), int(gid)


def containerfile_runtime_stage():
    """The Containerfile's last stage as (INSTRUCTION, arguments) pairs, continuation lines
    joined and comments left out."""
    out, pending = [], ""
    for raw in (REPO_ROOT / "packaging" / "Containerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        pending = ""
        if word.upper() == "FROM":
            out = []
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def image(request):
    """`make image` in this run's BUILD (timed); the OciImage it wrote."""
    if os.geteuid() != 0:
        pytest.skip("not root: building the image's root file system and running it need root")
    missing = [t for t in ("mmdebstrap", "umoci") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (make deps installs them)")
    build = os.environ.get("BUILD") or "build"
    t0 = time.monotonic()
    p = subprocess.run(["make", "--no-print-directory", "image", f"BUILD={build}"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=1200)
    took = time.monotonic() - t0
    if p.returncode != 0:
        if MIRROR_DOWN.search(p.stderr):
            pytest.skip("no network to the Debian mirror: mmdebstrap cannot fetch the packages")
        pytest.fail(f"make image failed:\n{p.stdout}\n{p.stderr}", pytrace=False)
    say(request, f"make image took {took:.0f} s ({p.stdout.strip().splitlines()[-1]})")
    return OciImage(REPO_ROOT / build / "image" / "oci", "outboxd")


class Podman:
    """`podman run` of the image from its OCI layout, with storage of its own (vfs: it works
    where overlay mounts do not) and the OCI runtime given (crun, or runc where crun refuses
    this machine's cgroups)."""

    def __init__(self, image, storage, oci_runtime):
        self.image, self.storage, self.oci_runtime = image, storage, oci_runtime
        self.podman = ["podman", "--root", str(storage / "root"), "--runroot", str(storage / "run"),
                       "--storage-driver", "vfs", "--runtime", oci_runtime]
        self.name = f"podman ({oci_runtime})"

    def argv(self, args, mounts=()):
        # Podman's default limits exceed what a sandbox without CAP_SYS_RESOURCE may set.
        cmd = [*self.podman, "run", "--rm", "--read-only", "--read-only-tmpfs=false", "--network", "host",
               "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
        for k, v in ENV.items():
            cmd += ["--env", f"{k}={v}"]
        for host, target, writable in mounts:
            cmd += ["--volume", f"{host}:{target}:{'rw' if writable else 'ro'}"]
        return cmd + [f"oci:{self.image.ref}", *args]


class Chroot:
    """The image's unpacked root file system run the way its config says (user, env,
    entrypoint, cmd): in a mount namespace, bind-mounted read-only onto itself with the
    mounts on top, then chroot as the image's user; the host's network."""

    name = "unshare + chroot"

    def __init__(self, image, rootfs):
        self.image, self.rootfs = image, rootfs

    def argv(self, args, mounts=()):
        cfg = self.image.config
        uid, gid = self.image.uid_gid
        script = ['set -e', 'r=$1; shift', 'mount --bind "$r" "$r"', 'mount --bind /dev "$r/dev"']
        for host, target, writable in mounts:
            script.append(f'mount --bind {shlex.quote(str(host))} "$r"{shlex.quote(target)}')
            if not writable:
                script.append(f'mount -o remount,bind,ro "$r"{shlex.quote(target)}')
        script += ['mount -o remount,bind,ro "$r"',
                   f'exec chroot --userspec={uid}:{gid} --groups={gid} "$r" "$@"']
        env = [*cfg.get("Env", []), *(f"{k}={v}" for k, v in ENV.items())]
        command = [*cfg["Entrypoint"], *(args or cfg["Cmd"])]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "; ".join(script), "sh",
                str(self.rootfs), "/usr/bin/env", "-i", *env, *command]


def working_podman(image, storage, tried):
    """A Podman that runs the image here, its OCI runtime crun or else runc (both share the
    storage, so the image is imported once), or None; each refusal is added to tried."""
    for oci_runtime in ("crun", "runc"):
        if shutil.which(oci_runtime) is None:
            continue
        podman = Podman(image, storage, oci_runtime)
        try:
            p = subprocess.run(podman.argv(["--version"]), capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            p = subprocess.CompletedProcess([], -1, "", "no answer in 300 s")
        if p.returncode == 0 and p.stdout.strip() == f"outboxd {VERSION}":
            return podman
        tried.append(f"{podman.name}: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return None


@pytest.fixture(scope="module")
def runtime(request, image, tmp_path_factory):
    """How this machine runs the image: Podman where it can, else Chroot."""
    tried = []
    if os.environ.get("OUTBOXD_IMAGE_RUNTIME") != "chroot" and shutil.which("podman"):
        storage = tmp_path_factory.mktemp("podman")
        podman = working_podman(image, storage, tried)
        if podman is not None:
            say(request, f"runs under {podman.name}" + (f" ({'; '.join(tried)})" if tried else ""))
            yield podman
        for what in ("rm", "rmi"):
            subprocess.run([*Podman(image, storage, "crun").podman, what, "--all", "--force"],
                           capture_output=True, timeout=120)
        shutil.rmtree(storage, ignore_errors=True)
        if podman is not None:
            return
    rootfs_dir = tmp_path_factory.mktemp("image-rootfs")
    p = subprocess.run(["umoci", "unpack", "--image", image.ref, str(rootfs_dir / "bundle")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    chroot = Chroot(image, rootfs_dir / "bundle" / "rootfs")
    say(request, f"runs under {chroot.name}" + (f" (podman cannot here: {'; '.join(tried)})" if tried else ""))
    yield chroot
    shutil.rmtree(rootfs_dir, ignore_errors=True)


def test_the_image_config_is_the_containerfiles(image):
    stage = containerfile_runtime_stage()
    last = {word: rest for word, rest in stage}
    labels = {}
    for word, rest in stage:
        if word == "LABEL":
            labels.update(kv.split("=", 1) for kv in shlex.split(rest))
    labels = {k: v.replace("${VERSION}", VERSION) for k, v in labels.items()}
    cfg = image.config
    assert cfg["User"] == last["USER"]
    assert cfg["Entrypoint"] == json.loads(last["ENTRYPOINT"])
    assert cfg["Cmd"] == json.loads(last["CMD"])
    assert sorted(cfg["ExposedPorts"]) == sorted(last["EXPOSE"].split())
    assert sorted(cfg["Volumes"]) == sorted(json.loads(last["VOLUME"]))
    assert cfg["Labels"] == labels and labels["org.opencontainers.image.version"] == VERSION


def test_the_image_runs_outboxd_as_a_non_root_user_without_a_healthcheck(image):
    uid, gid = image.uid_gid
    assert uid != 0 and gid != 0
    assert image.config["Entrypoint"] == ["/usr/bin/outboxd"]
    assert image.config["Cmd"] == ["run", "-c", f"{CONFIG_DIR}/outboxd.yaml"]
    # Probes are the orchestrator's (/healthz, /readyz): neither build declares one.
    assert "Healthcheck" not in image.config
    assert not any(word == "HEALTHCHECK" for word, _ in containerfile_runtime_stage())


def test_outboxd_version_from_the_image(runtime):
    p = subprocess.run(runtime.argv(["--version"]), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"outboxd {VERSION}"


def test_the_image_relays_on_a_read_only_root_as_its_user(runtime, image, ddb, table, tmp_path):
    """Its default command reads the mounted config; messages go to a file sink in the
    volume, the only place it writes, and are marked published."""
    uid, gid = image.uid_gid
    config_dir, volume = tmp_path / "config", tmp_path / "volume"
    config_dir.mkdir()
    volume.mkdir()
    os.chown(volume, uid, gid)
    (config_dir / "outboxd.yaml").write_text(relay_config(
        ddb.endpoint, table, f"  - name: out\n    type: file\n    path: {VOLUME}/events.jsonl\n"))
    mounts = [(config_dir, CONFIG_DIR, False), (volume, VOLUME, True)]
    argv = runtime.argv([], mounts)
    d = OutboxdProcess(argv[0], *argv[1:], env=ENV, log_path=tmp_path / "image.log")
    try:
        rows = produce(ddb.endpoint, table, 6, 3, ids=True)
        events = volume / "events.jsonl"
        assert wait_until(lambda: len(lines_of(events)) == len(rows), 60), d.output()
        assert sorted(e["id"] for e in lines_of(events)) == sorted(r[0] for r in rows)
        assert os.stat(events).st_uid == uid
        assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 20)
    finally:
        rc = d.stop(timeout=40)
    assert rc == 0, d.output()
