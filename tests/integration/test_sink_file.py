"""The JSON-lines sinks (file, stdout) through tests/tools/sink_publish:
one structured CloudEvent a line (SPEC §4), appends, fsync modes,
reopening after rotation, write errors."""

import base64
import json
import os
import subprocess

import pytest

from outboxd_config import tool, tool_env


def msg(sk="m1", payload=b'{"n":1}', **kw):
    m = {"pk": "p1", "sk": sk, "messageType": "OrderCreated",
         "payload_b64": base64.b64encode(payload).decode(),
         "headers": {"content-type": "application/json", "tenant": "t1"},
         "aggregateId": "a1", "aggregateType": "Order", "createdAt": "2026-11-25T22:05:12.123Z"}
    m.update(kw)
    return m


def read_lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_file_sink_appends_one_cloudevent_a_line(tmp_path, sink_publish):
    out = tmp_path / "events.jsonl"
    opts = {"type": "file", "path": str(out)}
    run = sink_publish(opts, [msg("m1"), msg("m2", payload=b"\x00\xff", headers={"content-type": "image/png"})])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run
    run = sink_publish(opts, [msg("m3")])
    assert run.results[0]["result"] == "ack", run
    events = read_lines(out)
    assert [e["id"] for e in events] == ["m1", "m2", "m3"]
    first = events[0]
    assert (first["specversion"], first["type"], first["source"], first["subject"], first["partitionkey"]) == (
        "1.0", "OrderCreated", "/outbox/Order", "a1", "p1")
    assert first["data"] == {"n": 1} and "data_base64" not in first
    assert first["tenant"] == "t1"
    assert events[1]["datacontenttype"] == "image/png"
    assert base64.b64decode(events[1]["data_base64"]) == b"\x00\xff" and "data" not in events[1]


def test_file_sink_dead_letters_carry_their_reason(tmp_path, sink_publish):
    out = tmp_path / "dlq.jsonl"
    run = sink_publish({"type": "file", "path": str(out)}, [msg("m1", error_info='HTTP 400: "bad"'), msg("m2")])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run
    first, second = read_lines(out)
    assert first["deadletterreason"] == 'HTTP 400: "bad"' and first["data"] == {"n": 1}
    assert "deadletterreason" not in second


def test_file_sink_creates_the_file_without_world_access(tmp_path, sink_publish):
    out = tmp_path / "new.jsonl"
    run = sink_publish({"type": "file", "path": str(out)}, [msg()])
    assert run.results[0]["result"] == "ack", run
    assert os.stat(out).st_mode & 0o007 == 0


@pytest.mark.parametrize("mode", ["always", "batch", "never"])
def test_file_sink_fsync_modes_deliver_every_line(tmp_path, sink_publish, mode):
    out = tmp_path / "events.jsonl"
    run = sink_publish({"type": "file", "path": str(out), "fsync": mode},
                       [msg(f"m{i}") for i in range(5)], "--batch", "2")
    assert [r["result"] for r in run.results] == ["ack"] * 5, run
    assert [e["id"] for e in read_lines(out)] == [f"m{i}" for i in range(5)]


def test_file_sink_reopen_writes_to_a_new_file_after_rotation(tmp_path, sink_publish):
    out, rotated = tmp_path / "events.jsonl", tmp_path / "events.jsonl.1"
    cfg = tmp_path / "file.yaml"
    cfg.write_text("aws:\n  region: us-east-1\ntable:\n  name: outbox\n"
                   f"sinks:\n  - name: s\n    type: file\n    path: {out}\n")
    p = subprocess.Popen([tool("sink_publish"), str(cfg), "s", "--batch", "1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=tool_env(), text=True)
    try:
        p.stdin.write(json.dumps(msg("m1")) + "\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline())["result"] == "ack"
        os.rename(out, rotated)
        p.stdin.write(json.dumps(msg("m2")) + "\n")      # still the renamed file: not reopened yet
        p.stdin.flush()
        assert json.loads(p.stdout.readline())["result"] == "ack"
        p.stdin.write('{"reopen": true}\n' + json.dumps(msg("m3")) + "\n")
        p.stdin.close()
        assert json.loads(p.stdout.readline())["result"] == "ack"
        assert p.wait(timeout=10) == 0
    finally:
        p.kill() if p.poll() is None else None
    assert [e["id"] for e in read_lines(rotated)] == ["m1", "m2"]
    assert [e["id"] for e in read_lines(out)] == ["m3"]


def test_file_sink_write_error_is_retry(sink_publish):
    run = sink_publish({"type": "file", "path": "/dev/full"}, [msg("m1"), msg("m2")])
    assert run.results == [{"sk": sk, "result": "retry", "error": "write /dev/full: No space left on device"}
                           for sk in ("m1", "m2")]


def test_file_sink_path_that_cannot_be_opened_fails_at_creation(tmp_path, sink_publish):
    path = tmp_path / "missing-dir" / "events.jsonl"
    run = sink_publish({"type": "file", "path": str(path)}, [msg()], returncode=78)
    assert f"sink 's': open {path}: No such file or directory" in run.stderr


def test_stdout_sink_prints_one_cloudevent_a_line(sink_publish):
    run = sink_publish({"type": "stdout"}, [msg(f"m{i}") for i in range(3)])
    assert [r["result"] for r in run.results] == ["ack"] * 3, run
    assert [e["id"] for e in run.other] == ["m0", "m1", "m2"]
    assert all(e["data"] == {"n": 1} and e["type"] == "OrderCreated" for e in run.other)
