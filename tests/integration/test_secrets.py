"""Secrets (keys, tokens, passwords, webhook secrets) never appear in logs, `check` output or /metrics."""

import time

from relay_util import create_outbox_table, free_port, metrics_text, produce, wait_until

SECRETS = {
    "secret_access_key": "SeCrEtAcCeSsKeY0123456789abcdefghijklmn",
    "session_token": "SeSsIoNtOkEn-FQoGZXIvYXdzEJr-very-long-token",
    "bearer_token": "BeArErToKeN-4f3c2b1a",
    "basic_password": "BaSiCpAsSwOrD-9z8y7x",
    "webhook_secret": "whsec_" + "V2ViaG9va1NlY3JldEZvclRlc3Rz",
    "url_password": "UrLpAsSwOrD-5e6f",
    "url_query": "UrLqUeRy-ApIkEy-7a8b",
}


def with_url_secrets(url, path="/hook"):
    """url with a user and password and an API key in its query."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://hookuser:{SECRETS['url_password']}@{rest}{path}?apikey={SECRETS['url_query']}"


def config(endpoint, table, url, port):
    return f"""\
aws:
  region: us-east-1
  endpoint: {endpoint}
  access_key_id: AKIDSECRETTEST
  secret_access_key: {SECRETS["secret_access_key"]}
  session_token: {SECRETS["session_token"]}
table:
  name: {table}
stream:
  poll_interval: 100ms
relay:
  backoff: {{ initial: 50ms, max: 500ms }}
log:
  level: debug
metrics:
  listen: 127.0.0.1:{port}
sinks:
  - name: hook
    type: http
    url: {with_url_secrets(url)}
    bearer_token: {SECRETS["bearer_token"]}
    webhook_secret: {SECRETS["webhook_secret"]}
  - name: basic
    type: http
    url: {url}/basic
    basic_username: user
    basic_password: {SECRETS["basic_password"]}
default_sink: hook
routes:
  - match: {{ messageType: "Test.Event1" }}
    sink: basic
"""


def leaked(text):
    found = []
    for name, value in SECRETS.items():
        for part in (value, value[6:] if value.startswith("whsec_") else None):
            if part and part in text:
                found.append(name)
    return found


def test_check_output_shows_no_secret(ddb, tmp_config, run_outboxd, http_receiver):
    cfg = tmp_config(config(ddb.endpoint, "outbox", http_receiver.url, free_port()))
    r = run_outboxd("check", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "(set)" in r.stdout
    assert leaked(r.stdout + r.stderr) == []


def test_a_debug_run_with_failures_logs_and_exposes_no_secret(ddb, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_secrets")
    port = free_port()
    # Some answers fail, so error paths are logged too.
    http_receiver.respond(lambda req: 500 if req.path.endswith("/basic") and time.monotonic() % 2 < 1 else
                          401 if b'"n":3' in req.body else 200)
    cfg = tmp_config(config(ddb.endpoint, table, http_receiver.url, port))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 60, 6)
    assert wait_until(lambda: len(http_receiver.accepted()) >= 40, 60), d.output()
    time.sleep(1)
    text = metrics_text(port)
    assert d.stop() == 0
    out = d.output()
    assert "debug" in out
    assert leaked(out) == []
    assert leaked(text) == []
    # The receiver did get the credentials: they are used, just never shown.
    auth = {r.headers.get("authorization", "") for r in http_receiver.requests}
    assert any(SECRETS["bearer_token"] in a for a in auth)


def test_check_shows_urls_with_their_password_and_query_hidden(ddb, tmp_config, run_outboxd, http_receiver):
    cfg = tmp_config(config(ddb.endpoint, "outbox", http_receiver.url, free_port()))
    r = run_outboxd("check", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert leaked(r.stdout + r.stderr) == []
    assert f"url: {http_receiver.url.replace('://', '://hookuser:***@')}/hook?***\n" in r.stdout, r.stdout


def test_an_endpoint_with_a_password_and_query_is_shown_without_them_by_check_and_run(
        tmp_config, run_outboxd, http_receiver):
    endpoint = with_url_secrets("http://127.0.0.1:9", path="/")
    cfg = tmp_config(config(endpoint, "outbox", http_receiver.url, free_port()))
    check = run_outboxd("check", "-c", cfg)
    assert check.returncode == 0, check.stderr
    assert "endpoint: http://hookuser:***@127.0.0.1:9/?***\n" in check.stdout, check.stdout
    run = run_outboxd("run", "-c", cfg, timeout=30)
    assert run.returncode == 78, run.stderr
    assert "http://hookuser:***@127.0.0.1:9/?***" in run.stderr, run.stderr
    assert leaked(check.stdout + check.stderr + run.stdout + run.stderr) == []


def test_a_config_error_about_a_url_shows_it_without_its_password_or_query(tmp_config, run_outboxd):
    url = with_url_secrets("ftp://127.0.0.1:9")
    cfg = tmp_config(f"""\
aws:
  region: us-east-1
table:
  name: outbox
sinks:
  - name: hook
    type: http
    url: {url}
""")
    r = run_outboxd("check", "-c", cfg)
    assert r.returncode == 78, r.stderr
    assert "got 'ftp://hookuser:***@127.0.0.1:9/hook?***'" in r.stderr, r.stderr
    assert leaked(r.stdout + r.stderr) == []
