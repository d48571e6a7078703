"""The AWS sinks' shared batch sending (sinks/aws_sink.c), through the eventbridge sink against
harness/eventbridge_server.py: a call of several entries refused as a whole as invalid may be
one entry's fault, so each of its entries is sent again in a call of its own and only the one
refused fails. And what the AWS sinks' calls read from their answers, against small loopback
endpoints (_Endpoint): an error answer's secrets, a GetQueueUrl answer kept for the sink's life."""

import base64
import hashlib
import http.server
import json
import subprocess
import threading

import yaml

from outboxd_config import tool, tool_env


def msg(sk):
    return {"pk": "p1", "sk": sk, "messageType": "OrderCreated", "payload_b64": base64.b64encode(b'{"n": 1}').decode(),
            "aggregateId": "a1", "aggregateType": "Order", "createdAt": "2025-11-25T22:05:12.123Z"}


def test_a_call_refused_whole_as_invalid_is_sent_again_entry_by_entry_and_only_the_refused_one_fails(
        eventbridge, sink_publish):
    # The call of all three, then the first of the three calls of one entry, are refused.
    eventbridge.fail_calls(2, code="ValidationException", message="1 validation error detected")
    run = sink_publish({"type": "eventbridge", "endpoint": eventbridge.url}, [msg(f"m{i}") for i in range(3)])
    assert sorted(r["result"] for r in run.results) == ["ack", "ack", "reject"], run
    refused, = [r for r in run.results if r["result"] == "reject"]
    assert "PutEvents: ValidationException" in refused["error"], refused
    assert [len(c.entries) for c in eventbridge.calls()] == [3, 1, 1, 1]
    acked = sorted(json.loads(e.detail)["id"] for e in eventbridge.events())
    assert acked == sorted(r["sk"] for r in run.results if r["result"] == "ack")


class _Endpoint:
    """A loopback AWS JSON endpoint: answer(headers, request) gives each call's status and body."""

    def __init__(self, answer):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                status, text = answer(self.headers, request)
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def publish_with_session_token(tmp_path, endpoint, token):
    """sink_publish of one message through an eventbridge sink whose credentials carry token."""
    config = tmp_path / "sink_publish.yaml"
    config.write_text(yaml.safe_dump({
        "aws": {"region": "us-east-1", "access_key_id": "AKIDTEST", "secret_access_key": "testsecret",
                "session_token": token},
        "table": {"name": "outbox"},
        "sinks": [{"name": "s", "type": "eventbridge", "endpoint": endpoint}],
        "default_sink": "s"}))
    p = subprocess.run([tool("sink_publish"), str(config), "s"], input=(json.dumps(msg("m1")) + "\n").encode(),
                       capture_output=True, timeout=30, env=tool_env())
    return json.loads(p.stdout), p.stderr.decode()


def test_a_refusal_quoting_the_session_token_json_escaped_keeps_it_out_of_the_error(tmp_path):
    # A real token holds '/' and '+'; JSON may write '/' as "\/" (and any character as \uXXXX):
    # the answer's bytes then do not hold the token, but the message read from them does (SPEC §7).
    token = "IQoJb3JpZ2luX2VjEXAMPLE/" + "Zm9v+YmFy/" * 40

    def answer(headers, request):
        quoted = f"POST\n/\n\nhost:{headers['Host']}\nx-amz-security-token:{headers['X-Amz-Security-Token']}\n"
        message = json.dumps(f"The Canonical String for this request should have been\n'{quoted}'")
        return 400, '{"__type":"InvalidSignatureException","message":' + message.replace("/", "\\/") + "}"

    with _Endpoint(answer) as server:
        result, stderr = publish_with_session_token(tmp_path, server.url, token)
    assert result["result"] == "retry" and "InvalidSignatureException" in result["error"], result
    assert "x-amz-security-token:" in result["error"], result
    pieces = [p for p in token.split("/") if p]
    assert not any(p[:12] in result["error"] or p[:12] in stderr for p in pieces), result


def test_a_queue_url_answered_for_another_queue_than_the_name_asked_is_not_kept_or_used(sink_publish):
    # GetQueueUrl's answer is kept for the sink's life: one naming another queue would send (and
    # acknowledge) every message of the asked queue into that one.
    sent_to = []

    def answer(headers, request):
        if headers["X-Amz-Target"] == "AmazonSQS.GetQueueUrl":
            return 200, json.dumps({"QueueUrl": f"http://127.0.0.1:1/000000000000/other-{request['QueueName']}"})
        sent_to.append(request["QueueUrl"])
        return 200, json.dumps({"Successful": [
            {"Id": e["Id"], "MessageId": "x", "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest()}
            for e in request["Entries"]], "Failed": []})

    with _Endpoint(answer) as server:
        run = sink_publish({"type": "sqs", "queue_url": "orders", "endpoint": server.url}, [msg("m1")])
    result, = run.results
    assert result["result"] == "retry" and "GetQueueUrl" in result["error"], result
    assert "other-orders" in result["error"], result
    assert sent_to == []
