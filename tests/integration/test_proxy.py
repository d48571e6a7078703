"""outboxd through a forward proxy named by HTTP_PROXY / HTTPS_PROXY / NO_PROXY (SPEC §6):
DynamoDB and Streams in absolute form, an https sink through CONNECT with its certificate
verified, NO_PROXY bypassing, proxy credentials (given, wrong, never shown), and the proxy
down for a while without a message lost."""


import pytest

from harness.http_proxy import HttpProxy
from harness.http_receiver import HttpReceiver
from harness.util import self_signed_cert
from relay_util import http_sink, produce, relay_config, scan_items, wait_until


@pytest.fixture
def proxy():
    p = HttpProxy().start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory):
    """A self-signed certificate for the name localhost (the CA file is the certificate)."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"), "localhost")


@pytest.fixture
def tls_receiver(localhost_cert):
    rx = HttpReceiver(certfile=str(localhost_cert[0]), keyfile=str(localhost_cert[1])).start()
    try:
        yield rx
    finally:
        rx.stop()


def proxy_env(**variables):
    """The environment's proxy variables: these and no others (the harness sets NO_PROXY=*)."""
    env = {k: None for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")}
    env.update(variables)
    return env


def all_published(ddb, table, n):
    items = scan_items(ddb, table)
    return len(items) == n and all(i["isPublished"]["BOOL"] for i in items)


def https_sink(receiver, cert):
    return http_sink("hook", f"https://localhost:{receiver.port}/hook", f"    ca_file: {cert}\n")


def test_dynamodb_and_streams_go_through_http_proxy_and_no_proxy_bypasses_the_sink(
        ddb, table, fault_proxy, proxy, http_receiver, tmp_config, spawn_outboxd):
    # DynamoDB behind a recording reverse proxy: every request it sees must have come
    # through the forward proxy. The sink, on localhost, is exempted by NO_PROXY.
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table,
                                  http_sink("hook", f"http://localhost:{http_receiver.port}/hook")))
    d = spawn_outboxd("run", "-c", cfg, env=proxy_env(HTTP_PROXY=proxy.url_for(), NO_PROXY="localhost"))
    produce(ddb.endpoint, table, 30, 5)
    assert http_receiver.wait_for(30, timeout=30), d.output()
    assert wait_until(lambda: all_published(ddb, table, 30), 20), d.output()
    assert d.stop() == 0

    seen = proxy.seen
    ddb_port = fault_proxy.port
    assert len(seen) == len(fault_proxy.requests) > 0
    assert all(s.method == "POST" and s.target == f"http://127.0.0.1:{ddb_port}/" for s in seen), seen[:3]
    assert all(s.host == f"127.0.0.1:{ddb_port}" for s in seen)  # the signed Host, kept
    targets = {s.amz_target for s in seen}
    assert {"DynamoDBStreams_20120810.GetRecords", "DynamoDB_20120810.UpdateItem"} <= targets, targets
    assert not any(str(http_receiver.port) in s.target for s in seen)
    assert f"proxies from the environment: http via http://127.0.0.1:{proxy.port}, not for localhost" in d.output()


def test_an_https_sink_goes_through_connect_with_its_certificate_verified(
        ddb, table, localhost_cert, tls_receiver, tmp_config, spawn_outboxd):
    proxy = HttpProxy(auth=("relay", "s3@cret")).start()
    try:
        cfg = tmp_config(relay_config(ddb.endpoint, table, https_sink(tls_receiver, localhost_cert[0])))
        d = spawn_outboxd("run", "-c", cfg, env=proxy_env(https_proxy=proxy.url_for("relay", "s3%40cret")))
        produce(ddb.endpoint, table, 10, 2)
        assert tls_receiver.wait_for(10, timeout=30), d.output()
        assert wait_until(lambda: all_published(ddb, table, 10), 20), d.output()
        assert d.stop() == 0
    finally:
        proxy.stop()
    seen = proxy.seen
    assert seen and all(s.method == "CONNECT" and s.target == f"localhost:{tls_receiver.port}"
                        and s.host == s.target and s.authorized for s in seen), seen
    out = d.output()
    assert f"https via http://relay:***@127.0.0.1:{proxy.port}" in out
    assert "s3%40cret" not in out and "s3@cret" not in out


def test_an_unverifiable_origin_certificate_is_refused_through_the_tunnel(
        ddb, table, tls_receiver, tmp_config, spawn_outboxd, proxy):
    # No ca_file: the test's certificate is unknown to the system store.
    cfg = tmp_config(relay_config(ddb.endpoint, table,
                                  http_sink("hook", f"https://localhost:{tls_receiver.port}/hook")))
    d = spawn_outboxd("run", "-c", cfg, env=proxy_env(HTTPS_PROXY=proxy.url_for()))
    produce(ddb.endpoint, table, 1, 1)
    assert wait_until(lambda: "certificate" in d.output(), 20), d.output()
    assert d.stop() == 0
    assert proxy.seen and tls_receiver.requests == []


def test_wrong_proxy_credentials_are_a_clear_error_and_messages_wait_for_the_right_ones(
        ddb, table, localhost_cert, tls_receiver, tmp_config, spawn_outboxd):
    proxy = HttpProxy(auth=("relay", "right")).start()
    try:
        cfg = tmp_config(relay_config(ddb.endpoint, table, https_sink(tls_receiver, localhost_cert[0])))
        d = spawn_outboxd("run", "-c", cfg, env=proxy_env(HTTPS_PROXY=proxy.url_for("relay", "wr0ng")))
        produce(ddb.endpoint, table, 5, 1)
        assert wait_until(lambda: "proxy authentication required" in d.output(), 20), d.output()
        assert tls_receiver.requests == []
        proxy.auth = ("relay", "wr0ng")   # the proxy now takes what outboxd sends
        assert tls_receiver.wait_for(5, timeout=30), d.output()
        assert wait_until(lambda: all_published(ddb, table, 5), 20), d.output()
        assert d.stop() == 0
    finally:
        proxy.stop()
    out = d.output()
    assert f"proxy 127.0.0.1:{proxy.port} refused CONNECT to localhost:{tls_receiver.port}: " \
           "proxy authentication required" in out
    assert "wr0ng" not in out and "dead" not in out.lower()


def test_the_proxy_down_for_a_while_loses_nothing(
        ddb, table, localhost_cert, tls_receiver, tmp_config, spawn_outboxd, proxy):
    cfg = tmp_config(relay_config(ddb.endpoint, table, https_sink(tls_receiver, localhost_cert[0])))
    d = spawn_outboxd("run", "-c", cfg, env=proxy_env(HTTPS_PROXY=proxy.url_for()))
    produce(ddb.endpoint, table, 10, 2)
    assert tls_receiver.wait_for(10, timeout=30), d.output()
    proxy.stop()
    produce(ddb.endpoint, table, 20, 4)
    assert wait_until(lambda: f"connect to proxy 127.0.0.1:{proxy.port}" in d.output(), 20), d.output()
    proxy.start()                      # the same port again
    assert wait_until(lambda: all_published(ddb, table, 30), 60), d.output()
    assert d.stop() == 0
    delivered = {r.headers["ce-id"] for r in tls_receiver.accepted()}
    assert len(delivered) == 30
    assert "dead" not in d.output().lower()
