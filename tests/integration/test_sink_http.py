"""The http sink through tests/tools/sink_publish against an HttpReceiver:
the CloudEvents HTTP binding (SPEC §4), authentication, Standard Webhooks
signatures, destinations, result classification (SPEC §3) and TLS."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from harness.http_receiver import HttpReceiver
from harness.util import self_signed_cert


def msg(sk="m1", payload=b'{"n":1}', **kw):
    m = {"pk": "p1", "sk": sk, "messageType": "OrderCreated",
         "payload_b64": base64.b64encode(payload).decode(),
         "headers": {"content-type": "application/json"}, "aggregateId": "a1",
         "aggregateType": "Order", "correlationId": "c1", "causationId": "k1",
         "createdAt": "2026-11-25T22:05:12.123Z"}
    m.update(kw)
    return m


def http(url, **opts):
    return {"type": "http", "url": url, **opts}


def test_binary_mode_sends_ce_headers_and_the_payload_as_body(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url + "/hook"),
                       [msg(payload=b"\x00\x01binary",
                            headers={"content-type": "application/vnd.acme+json", "x-tenant": "t1"})])
    assert [r["result"] for r in run.results] == ["ack"], run
    req, = http_receiver.requests
    assert (req.method, req.path, req.body) == ("POST", "/hook", b"\x00\x01binary")
    h = req.headers
    assert {k: h[k] for k in ("ce-specversion", "ce-id", "ce-type", "ce-source", "ce-subject", "ce-time",
                              "ce-partitionkey", "ce-correlationid", "ce-causationid")} == {
        "ce-specversion": "1.0", "ce-id": "m1", "ce-type": "OrderCreated", "ce-source": "/outbox/Order",
        "ce-subject": "a1", "ce-time": "2026-11-25T22:05:12.123Z", "ce-partitionkey": "p1",
        "ce-correlationid": "c1", "ce-causationid": "k1"}
    assert h.get_all("Content-Type") == ["application/vnd.acme+json"]
    assert h["x-tenant"] == "t1"
    assert h["Idempotency-Key"] == "m1"
    assert h["User-Agent"].startswith("outboxd/")
    assert "Expect" not in h and "ce-datacontenttype" not in h


def test_binary_mode_omits_absent_attributes_and_defaults_content_type_to_json(http_receiver, sink_publish):
    m = {"pk": "p1", "sk": "m1", "payload_b64": base64.b64encode(b"{}").decode()}
    run = sink_publish(http(http_receiver.url), [m])
    assert run.results[0]["result"] == "ack", run
    h = http_receiver.requests[0].headers
    assert h["Content-Type"] == "application/json"
    assert h["ce-type"] == "outbox.message"
    for absent in ("ce-subject", "ce-time", "ce-correlationid", "ce-causationid"):
        assert absent not in h


def test_ce_header_values_are_percent_encoded(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url), [msg(messageType='Order "Créé" 100%')])
    assert run.results[0]["result"] == "ack", run
    assert http_receiver.requests[0].headers["ce-type"] == "Order%20%22Cr%C3%A9%C3%A9%22%20100%25"


def test_message_headers_that_are_unsafe_are_not_sent(http_receiver, sink_publish):
    headers = {"content-type": "text/plain", "x-ok": "1", "bad name": "x", "x-crlf": "a\r\nInjected: 1",
               "x-ctl": "a\x01b", "Host": "evil.example", "Authorization": "Bearer stolen", "ce-id": "forged",
               "x-empty": ""}
    run = sink_publish(http(http_receiver.url), [msg(headers=headers)])
    assert run.results[0]["result"] == "ack", run
    h = http_receiver.requests[0].headers
    assert h["x-ok"] == "1" and h["x-empty"] == ""
    assert "bad name" not in h and "x-crlf" not in h and "Injected" not in h and "x-ctl" not in h
    assert h["Host"] == f"127.0.0.1:{http_receiver.port}"
    assert "Authorization" not in h
    assert h.get_all("ce-id") == ["m1"]


def test_idempotency_key_can_be_turned_off(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url, idempotency_key=False), [msg()])
    assert run.results[0]["result"] == "ack", run
    assert "Idempotency-Key" not in http_receiver.requests[0].headers


@pytest.mark.parametrize("payload,key", [(b'{"n": 1}', "data"), (b"\xff\x00", "data_base64")])
def test_structured_mode_body_is_the_cloudevent(http_receiver, sink_publish, payload, key):
    run = sink_publish(http(http_receiver.url, mode="structured"),
                       [msg(payload=payload, headers={"content-type": "application/json", "x-tenant": "t1"})])
    assert run.results[0]["result"] == "ack", run
    req = http_receiver.requests[0]
    assert req.headers.get_all("Content-Type") == ["application/cloudevents+json"]
    assert req.headers["x-tenant"] == "t1"
    assert "ce-id" not in req.headers
    ev = json.loads(req.body)
    assert (ev["specversion"], ev["id"], ev["type"], ev["source"]) == ("1.0", "m1", "OrderCreated", "/outbox/Order")
    if key == "data":
        assert ev["data"] == {"n": 1}
    else:
        assert base64.b64decode(ev["data_base64"]) == payload


def test_configured_headers_are_sent(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url, headers={"X-Source": "outboxd", "X-Env": "test"}), [msg()])
    assert run.results[0]["result"] == "ack", run
    h = http_receiver.requests[0].headers
    assert (h["X-Source"], h["X-Env"]) == ("outboxd", "test")


def test_bearer_token_is_sent_as_authorization(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url, bearer_token="tok-123"), [msg()])
    assert run.results[0]["result"] == "ack", run
    assert http_receiver.requests[0].headers["Authorization"] == "Bearer tok-123"


def test_basic_auth_is_sent(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url, basic_username="relay", basic_password="pa:ss"), [msg()])
    assert run.results[0]["result"] == "ack", run
    auth = http_receiver.requests[0].headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"relay:pa:ss").decode()


def verify_standard_webhook(req, key):
    h = req.headers
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + req.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == "v1," + expected
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    assert h["webhook-id"] == "m1"


def test_webhook_signature_with_a_whsec_secret(http_receiver, sink_publish):
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    run = sink_publish(http(http_receiver.url, webhook_secret=secret), [msg()])
    assert run.results[0]["result"] == "ack", run
    verify_standard_webhook(http_receiver.requests[0], key)


def test_webhook_signature_with_a_raw_secret_signs_the_structured_body(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url, webhook_secret="plain secret", mode="structured"), [msg()])
    assert run.results[0]["result"] == "ack", run
    req = http_receiver.requests[0]
    assert json.loads(req.body)["id"] == "m1"
    verify_standard_webhook(req, b"plain secret")


def test_relative_destination_resolves_against_url(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url + "/base/hook"),
                       [msg(destination="events/{aggregateType}"), msg(sk="m2", destination="/root")])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run
    assert sorted(r.path for r in http_receiver.requests) == ["/base/events/Order", "/root"]


def test_absolute_destination_replaces_url(http_receiver, sink_publish):
    other = HttpReceiver().start()
    try:
        run = sink_publish(http(http_receiver.url + "/hook"), [msg(destination=other.url + "/x?y=1")])
        assert run.results[0]["result"] == "ack", run
        assert [r.path for r in other.requests] == ["/x?y=1"]
        assert http_receiver.requests == []
    finally:
        other.stop()


def test_message_id_with_a_line_break_is_rejected(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url), [msg(sk="m1\r\nX-Injected: 1")])
    assert run.results[0]["result"] == "reject", run
    assert http_receiver.requests == []


def test_destination_that_is_not_http_is_rejected(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url), [msg(destination="ftp://127.0.0.1/x")])
    assert run.results[0]["result"] == "reject", run
    assert http_receiver.requests == []


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_ack(http_receiver, sink_publish, status):
    http_receiver.respond(lambda req: status)
    run = sink_publish(http(http_receiver.url), [msg()])
    assert run.results == [{"sk": "m1", "result": "ack", "error": ""}]


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_408_429_and_5xx_are_retry(http_receiver, sink_publish, status):
    http_receiver.respond(lambda req: status)
    run = sink_publish(http(http_receiver.url + "/hook"), [msg()])
    assert run.results == [{"sk": "m1", "result": "retry",
                            "error": f"HTTP {status} from POST {http_receiver.url}/hook"}]


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_reject(http_receiver, sink_publish, status):
    http_receiver.respond(lambda req: status)
    run = sink_publish(http(http_receiver.url + "/hook"), [msg()])
    assert run.results == [{"sk": "m1", "result": "reject",
                            "error": f"HTTP {status} from POST {http_receiver.url}/hook"}]


def test_each_message_of_a_batch_gets_its_own_result(http_receiver, sink_publish):
    http_receiver.respond(lambda req: {"m1": 200, "m2": 503, "m3": 400}[req.headers["ce-id"]])
    run = sink_publish(http(http_receiver.url), [msg("m1"), msg("m2"), msg("m3")])
    assert {r["sk"]: r["result"] for r in run.results} == {"m1": "ack", "m2": "retry", "m3": "reject"}


def test_connection_refused_is_retry(sink_publish):
    from harness import free_port
    url = f"http://127.0.0.1:{free_port()}/hook"
    run = sink_publish(http(url), [msg()])
    assert run.results == [{"sk": "m1", "result": "retry", "error": f"connect: Connection refused ({url})",
                            "unreachable": True}]


def test_timeout_is_retry(http_receiver, sink_publish):
    http_receiver.respond(lambda req: time.sleep(3) or 200)
    start = time.monotonic()
    run = sink_publish(http(http_receiver.url, timeout="300ms"), [msg()])
    assert time.monotonic() - start < 2.5
    assert run.results[0]["result"] == "retry", run
    assert "timeout" in run.results[0]["error"]


def test_errors_do_not_show_url_secrets(http_receiver, sink_publish):
    http_receiver.respond(lambda req: 500)
    url = http_receiver.url.replace("//", "//user:hunter2@") + "/hook?token=s3cret"
    run = sink_publish(http(url, bearer_token="tok-secret"), [msg()])
    err = run.results[0]["error"]
    assert err == f"HTTP 500 from POST {http_receiver.url}/hook"
    assert http_receiver.requests[0].path == "/hook?token=s3cret"


def test_a_batch_is_sent_concurrently(http_receiver, sink_publish):
    http_receiver.respond(lambda req: time.sleep(0.5) or 200)
    start = time.monotonic()
    run = sink_publish(http(http_receiver.url), [msg(f"m{i}") for i in range(10)])
    assert [r["result"] for r in run.results] == ["ack"] * 10, run
    assert time.monotonic() - start < 3.0
    assert len({r.client_port for r in http_receiver.requests}) == 10


def test_connections_are_kept_alive_between_batches(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url), [msg(f"m{i}") for i in range(50)], "--batch", "10")
    assert [r["result"] for r in run.results] == ["ack"] * 50, run
    assert len({r.client_port for r in http_receiver.requests}) <= 10


def test_publishers_on_several_threads_share_the_sink(http_receiver, sink_publish):
    run = sink_publish(http(http_receiver.url), [msg(f"m{i}") for i in range(200)], "--threads", "8")
    assert [r["result"] for r in run.results] == ["ack"] * 200, run
    assert sorted(r.headers["ce-id"] for r in http_receiver.requests) == sorted(f"m{i}" for i in range(200))


def test_dead_letters_carry_their_reason(http_receiver, sink_publish):
    reason = "HTTP 400 from POST http://x/hook"
    run = sink_publish(http(http_receiver.url), [msg(error_info=reason)])
    assert run.results[0]["result"] == "ack", run
    assert http_receiver.requests[0].headers["ce-deadletterreason"] == reason.replace(" ", "%20")
    run = sink_publish(http(http_receiver.url, mode="structured"), [msg("m2", error_info=reason)])
    assert run.results[0]["result"] == "ack", run
    assert json.loads(http_receiver.requests[1].body)["deadletterreason"] == reason


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_receiver(self_signed):
    rx = HttpReceiver(certfile=str(self_signed[0]), keyfile=str(self_signed[1])).start()
    try:
        yield rx
    finally:
        rx.stop()


def test_tls_unknown_certificate_is_retry(tls_receiver, sink_publish):
    run = sink_publish(http(tls_receiver.url + "/hook"), [msg()])
    assert run.results[0]["result"] == "retry", run
    assert "certificate" in run.results[0]["error"]
    assert tls_receiver.requests == []


def test_tls_ca_file_verifies_the_server(tls_receiver, sink_publish, self_signed):
    run = sink_publish(http(tls_receiver.url + "/hook", ca_file=str(self_signed[0])), [msg()])
    assert run.results[0]["result"] == "ack", run
    assert tls_receiver.requests[0].headers["ce-id"] == "m1"


def test_tls_verify_false_accepts_any_certificate(tls_receiver, sink_publish):
    run = sink_publish(http(tls_receiver.url + "/hook", tls_verify=False), [msg()])
    assert run.results[0]["result"] == "ack", run
