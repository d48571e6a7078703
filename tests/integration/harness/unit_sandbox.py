"""The parts of packaging/outboxd.service's sandbox that apply without systemd.

`unit_service_settings` reads the unit's [Service] section; `allowed_syscalls` expands
its SystemCallFilter= lines with the sets `systemd-analyze syscall-filter` prints (the
same tables systemd compiles the unit's filter from). Run as a program,

    python3 unit_sandbox.py SPEC.json PROGRAM ARGS...

loads seccomp filters built from SPEC (with libseccomp through ctypes: Debian has no
python3-seccomp) and executes PROGRAM under them, the way systemd loads them right
before it executes a service:

- "syscalls": the only system calls allowed, on the native architecture only
  (SystemCallArchitectures=native); any other kills the process. The unit answers
  EPERM instead (SystemCallErrorNumber=): killing is stricter, so a call outboxd makes
  outside the set fails the test loudly rather than down an error path.
- "mdwe": MemoryDenyWriteExecute= as systemd 252 implements it: no mmap both writable
  and executable, no mprotect/pkey_mprotect to executable, no shmat with SHM_EXEC
  (here too killing instead of EPERM).
- "families": RestrictAddressFamilies=: socket() of any other family fails with
  EAFNOSUPPORT, as under systemd (glibc's resolver relies on that answer).

Privileges, the user, the umask and limits are set by the caller (setpriv, prlimit).
"""

import ctypes
import errno
import json
import os
import shutil
import socket
import subprocess
import sys

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
AF_MAX = 46             # linux/socket.h


def scmp_act_errno(e):
    return 0x00050000 | (e & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def unit_service_settings(path):
    """{key: [values, in order]} of the unit file's [Service] section."""
    settings, section = {}, None
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_sets():
    """{"@name": [entries]} from `systemd-analyze syscall-filter` (entries may be sets)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True,
                         text=True, check=True).stdout
    sets, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = sets.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
        elif not line.strip():
            current = None
    return sets


def _expand(name, sets):
    if not name.startswith("@"):
        return {name}
    return set().union(*(_expand(e, sets) for e in sets[name]))


def allowed_syscalls(filter_lines, sets=None):
    """The system calls SystemCallFilter= lines allow, as systemd reads them: the first
    line, without "~", is the allow list; each "~" line takes its calls out of it."""
    sets = sets or syscall_sets()
    allowed = None
    for line in filter_lines:
        deny = line.startswith("~")
        names = set().union(*(_expand(n, sets) for n in line.lstrip("~").split()))
        if allowed is None:
            assert not deny, "a deny-list filter is not what this helper models"
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


class _Filter:
    def __init__(self, lib, default):
        self.lib = lib
        self.ctx = lib.seccomp_init(default)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def add(self, action, name, *cmps):
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:              # not a system call of this architecture
            return
        arr = (ScmpArgCmp * max(len(cmps), 1))(*[ScmpArgCmp(*c) for c in cmps])
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, nr, len(cmps), arr)
        if rc < 0:
            raise OSError(-rc, f"seccomp_rule_add {name}: {os.strerror(-rc)}")

    def load(self):
        rc = self.lib.seccomp_load(self.ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


def available():
    """Whether this machine has what running a program under the sandbox takes."""
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return all(shutil.which(p) for p in ("setpriv", "prlimit", "systemd-analyze"))


def _libseccomp():
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def load_filters(spec):
    """Loads the filters spec describes into this process (see the module's docstring)."""
    lib = _libseccomp()
    allow = _Filter(lib, SCMP_ACT_KILL_PROCESS)
    for name in sorted(spec["syscalls"]):
        allow.add(SCMP_ACT_ALLOW, name)

    rest = _Filter(lib, SCMP_ACT_ALLOW)
    if spec.get("mdwe"):
        wx = PROT_WRITE | PROT_EXEC
        rest.add(SCMP_ACT_KILL_PROCESS, "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
        rest.add(SCMP_ACT_KILL_PROCESS, "mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        rest.add(SCMP_ACT_KILL_PROCESS, "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        rest.add(SCMP_ACT_KILL_PROCESS, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    if "families" in spec:
        keep = {getattr(socket, f) for f in spec["families"]}
        refuse = scmp_act_errno(errno.EAFNOSUPPORT)
        for family in range(AF_MAX + 1):
            if family not in keep:
                rest.add(refuse, "socket", (0, SCMP_CMP_EQ, family, 0))
        rest.add(refuse, "socket", (0, SCMP_CMP_GT, AF_MAX, 0))
    # The allow list last: loading a filter is a system call it may not allow.
    rest.load()
    allow.load()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        load_filters(json.load(f))
    os.execv(sys.argv[2], sys.argv[2:])
