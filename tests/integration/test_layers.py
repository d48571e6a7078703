"""The architecture of ARCHITECTURE.md as checks on the source tree: which
part may include which, who may call aws/, that core/ names no broker and
that no two modules depend on each other. No server is started."""
import pathlib
import re

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"

# What each part of src/ may include besides itself and include/outboxd/.
ALLOWED = {
    "core": set(),
    "ops": {"core"},
    "aws": {"core", "ops"},
    "dynamo": {"aws", "core", "ops"},
    "sinks": {"aws", "core", "ops"},
    "relay": {"dynamo", "sinks", "core", "ops"},
    "cmd": {"relay", "dynamo", "sinks", "aws", "core", "ops"},
}

BROKERS = re.compile(r"kafka|\b(sqs|sns|eventbridge|kinesis|redis|amqp|rabbitmq|mqtt|nats|msk)\b", re.I)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(part=None):
    root = SRC / part if part else SRC
    return sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h"))


def includes(path):
    return INCLUDE.findall(path.read_text())


def code_only(text):
    """The text without comments and string literals (a comment may name a broker)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def test_each_part_includes_only_the_parts_below_it():
    wrong = []
    for part, allowed in ALLOWED.items():
        for f in sources(part):
            for inc in includes(f):
                top = inc.split("/")[0]
                if top not in allowed | {part, "outboxd"}:
                    wrong.append(f"{f.relative_to(SRC)} includes {inc}")
    assert not wrong, "\n".join(wrong)


def test_only_aws_and_dynamo_drive_aws_calls_and_the_relay_names_none():
    wrong = []
    for part in ("core", "ops", "relay", "cmd"):
        for f in sources(part):
            for n, line in enumerate(code_only(f.read_text()).splitlines(), 1):
                if "ob_aws_" in line:
                    wrong.append(f"{f.relative_to(SRC)}:{n}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def test_core_names_no_broker():
    wrong = []
    for f in sources("core"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if BROKERS.search(line):
                wrong.append(f"{f.relative_to(SRC)}:{n}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def test_a_sink_includes_no_other_sink():
    shared = {"sinks/sink.h", "sinks/common.h", "sinks/aws_sink.h"}
    wrong = []
    for f in sources("sinks"):
        own = f"sinks/{f.stem}.h"
        for inc in includes(f):
            if inc.startswith("sinks/") and inc not in shared | {own}:
                wrong.append(f"{f.relative_to(SRC)} includes {inc}")
    assert not wrong, "\n".join(wrong)


# Modules of more than one .c: the config loader, its table of keys and the
# reference generated from that table are one subsystem.
SAME_MODULE = {"core/config_schema": "core/config", "core/config_doc": "core/config"}


def module(path):
    m = str(pathlib.PurePath(path).with_suffix(""))
    return SAME_MODULE.get(m, m)


def test_no_two_modules_depend_on_each_other():
    # A module is a .c with its .h; an include of the other's header, either way
    # round and through any chain, makes a cycle.
    edges = {}
    for f in sources():
        mod = module(f.relative_to(SRC))
        deps = edges.setdefault(mod, set())
        for inc in includes(f):
            other = module(inc)
            if other != mod and (SRC / inc).exists():
                deps.add(other)
    cycles = []
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(edges.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)
