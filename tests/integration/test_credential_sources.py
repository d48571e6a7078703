"""The credential sources of the SDKs' chain against loopback servers that behave like
the real ones (harness/aws_cred_servers.py), through tests/tools/creds_resolve (the
chain as outboxd walks it; it prints the source, key id and expiry, never a secret) and
`outboxd check` (which says the source without calling it)."""

import subprocess
import time
import urllib.error
import urllib.request

import pytest

from harness.aws_cred_servers import ContainerCredentialsServer, ImdsServer, StsServer
from harness.aws_creds import CredentialLedger
from harness.outboxd import outboxd_env
from harness.server_base import LoopbackServer
from outboxd_config import tool

ROLE = "arn:aws:iam::123456789012:role/outboxd"


@pytest.fixture
def ledger():
    return CredentialLedger()


@pytest.fixture
def env(tmp_path):
    """Sanitized as outboxd's (no AWS_* of the caller, instance metadata off), shared
    files in tmp_path; tests add what their source needs. A value None removes it."""
    base = outboxd_env({"AWS_CONFIG_FILE": tmp_path / "config",
                        "AWS_SHARED_CREDENTIALS_FILE": tmp_path / "credentials",
                        "HOME": tmp_path})

    def make(**extra):
        e = dict(base)
        for k, v in extra.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        return e
    return make


class Resolver:
    """creds_resolve running: one line out per resolve, the next one when told."""

    def __init__(self, env, *args, times=1):
        self.p = subprocess.Popen([tool("creds_resolve"), "--times", str(times), *args], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)

    def line(self):
        return self.p.stdout.readline().rstrip("\n")

    def again(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        return self.line()

    def finish(self, timeout=30):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out, err


def resolve(env, *args, timeout=30):
    return subprocess.run([tool("creds_resolve"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def credentials_line(issued, source):
    return f"credentials {source}|{issued.access_key_id}|{int(issued.expires_at)}|token"


def secrets_of(ledger):
    return [s for c in ledger.issued for s in (c.secret_access_key, c.session_token) if s]


def test_web_identity_assumes_the_role_unsigned_and_reads_the_token_file_again_at_each_refresh(
        ledger, env, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("jwt-one")
    with StsServer(ledger, region="eu-west-1", tokens={"jwt-one", "jwt-two"}, lifetime=900) as sts:
        r = Resolver(env(AWS_REGION="eu-west-1", AWS_ENDPOINT_URL_STS=sts.url, AWS_ROLE_ARN=ROLE,
                         AWS_WEB_IDENTITY_TOKEN_FILE=token_file, AWS_ROLE_SESSION_NAME="pod-1"), times=2)
        assert r.line() == "region eu-west-1"
        source = f"web identity (role {ROLE}, token file {token_file})"
        first = r.line()
        token_file.write_text("jwt-two")       # the kubelet rotates it
        second = r.again()
        status, out, err = r.finish()
    assert status == 0, err
    assert [first, second] == [credentials_line(c, source) for c in ledger.issued]
    assert [(c.params["Action"], c.params["WebIdentityToken"], c.params["RoleSessionName"], c.params["RoleArn"])
            for c in sts.calls] == [("AssumeRoleWithWebIdentity", "jwt-one", "pod-1", ROLE),
                                    ("AssumeRoleWithWebIdentity", "jwt-two", "pod-1", ROLE)]
    assert all("authorization" not in c.headers for c in sts.calls)
    assert not any(s in first + second + out + err for s in secrets_of(ledger))


def test_an_sts_error_names_its_code_the_role_and_the_token_file_but_never_the_token(ledger, env, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("jwt-not-for-this-audience")
    with StsServer(ledger, tokens={"other"}) as sts:
        p = resolve(env(AWS_REGION="us-east-1", AWS_ENDPOINT_URL=sts.url, AWS_ROLE_ARN=ROLE,
                        AWS_WEB_IDENTITY_TOKEN_FILE=token_file))
    assert p.returncode == 78, p.stderr
    assert p.stderr == (f"error: web identity (role {ROLE}, token file {token_file}): STS answered HTTP 400 "
                        "InvalidIdentityToken: Incorrect token audience\n")
    assert "jwt-not" not in p.stdout + p.stderr


def write_profiles(tmp_path, credentials, config):
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)


def test_a_profile_role_is_assumed_with_the_source_profile_keys_signed_and_chained(ledger, env, tmp_path):
    base = ledger.add_static("AKIDBASE0000000001", "base-secret-never-shown")
    write_profiles(tmp_path, f"[base]\naws_access_key_id = {base.access_key_id}\n"
                             f"aws_secret_access_key = {base.secret_access_key}\n",
                   f"[profile app]\nregion = eu-central-1\nrole_arn = {ROLE}\nsource_profile = base\n"
                   "role_session_name = outboxd-app\nexternal_id = ext-42\nduration_seconds = 1800\n"
                   "[profile chained]\nregion = eu-central-1\nrole_arn = arn:aws:iam::210987654321:role/next\n"
                   "source_profile = app\n")
    with StsServer(ledger, region="eu-central-1") as sts:
        e = env(AWS_ENDPOINT_URL_STS=sts.url)
        app = resolve(e, "--profile", "app")
        chained = resolve(e, "--profile", "chained")
    assert app.returncode == 0 and chained.returncode == 0, app.stderr + chained.stderr
    issued = ledger.issued[1:]
    assert app.stdout.splitlines() == [
        "region eu-central-1",
        credentials_line(issued[0], f"assumed role {ROLE} (profile app, source profile base)")]
    assert chained.stdout.splitlines()[1] == credentials_line(
        issued[2], "assumed role arn:aws:iam::210987654321:role/next (profile chained, source profile app)")
    # Every call's signature was recomputed with the ledger's secret; the chained one
    # was signed with the temporary keys (and token) the first AssumeRole gave.
    assert [(c.status, c.params["Action"]) for c in sts.calls] == [(200, "AssumeRole")] * 3
    first = sts.calls[0]
    assert (first.params["ExternalId"], first.params["DurationSeconds"], first.params["RoleSessionName"]) == \
        ("ext-42", "1800", "outboxd-app")
    assert first.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={base.access_key_id}/")
    assert f"Credential={issued[1].access_key_id}/" in sts.calls[2].headers["authorization"]
    assert sts.calls[2].headers["x-amz-security-token"] == issued[1].session_token


def test_a_source_profile_with_keys_gives_them_though_it_has_a_role_of_its_own(ledger, env, tmp_path):
    """As botocore: a profile's own role_arn is assumed when it is the one asked for, not
    when another profile takes it as source_profile and it has static keys."""
    base = ledger.add_static("AKIDBASE0000000002", "base-secret-never-shown")
    base_role = "arn:aws:iam::123456789012:role/base-admin"
    write_profiles(tmp_path, f"[base]\naws_access_key_id = {base.access_key_id}\n"
                             f"aws_secret_access_key = {base.secret_access_key}\n",
                   f"[profile base]\nrole_arn = {base_role}\nsource_profile = base\n"
                   f"[profile app]\nrole_arn = {ROLE}\nsource_profile = base\n")
    with StsServer(ledger) as sts:
        e = env(AWS_REGION="us-east-1", AWS_ENDPOINT_URL_STS=sts.url)
        app = resolve(e, "--profile", "app")
        own = resolve(e, "--profile", "base")
    assert app.returncode == 0 and own.returncode == 0, app.stderr + own.stderr
    assert [c.params["RoleArn"] for c in sts.calls] == [ROLE, base_role]
    assert all(c.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={base.access_key_id}/")
               for c in sts.calls)


def test_assume_role_with_keys_sts_does_not_know_fails_with_stss_answer(ledger, env, tmp_path):
    write_profiles(tmp_path, "[base]\naws_access_key_id = AKIDUNKNOWN\naws_secret_access_key = nope\n",
                   f"[profile app]\nrole_arn = {ROLE}\nsource_profile = base\n")
    with StsServer(ledger) as sts:
        p = resolve(env(AWS_REGION="us-east-1", AWS_ENDPOINT_URL_STS=sts.url), "--profile", "app")
    assert p.returncode == 78
    assert p.stderr == (f"error: assumed role {ROLE} (profile app, source profile base): STS answered HTTP 403 "
                        "InvalidClientTokenId: The security token included in the request is invalid.\n")


def test_the_container_endpoint_sends_the_token_file_read_again_at_each_refresh(ledger, env, tmp_path):
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-token-1")
    with ContainerCredentialsServer(ledger, token="pod-token-1", lifetime=600) as server:
        url = f"{server.url}/v1/credentials"
        r = Resolver(env(AWS_REGION="us-west-2", AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
                         AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file,
                         AWS_CONTAINER_AUTHORIZATION_TOKEN="ignored-when-the-file-is-set"), times=2)
        assert r.line() == "region us-west-2"
        first = r.line()
        token_file.write_text("pod-token-2\n")
        server.token = "pod-token-2"
        second = r.again()
        status, out, err = r.finish()
    assert status == 0, err
    source = f"container endpoint {url} (token file {token_file})"
    assert [first, second] == [credentials_line(c, source) for c in ledger.issued]
    assert [(c.path, c.headers["authorization"]) for c in server.calls] == \
        [("/v1/credentials", "pod-token-1"), ("/v1/credentials", "pod-token-2")]


def test_the_container_endpoint_refusing_the_token_is_an_error_without_it(ledger, env):
    with ContainerCredentialsServer(ledger, token="right") as server:
        url = f"{server.url}/v1/credentials"
        p = resolve(env(AWS_REGION="us-west-2", AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong-token-value"))
    assert p.returncode == 78
    assert p.stderr == (f"error: container endpoint {url} (token AWS_CONTAINER_AUTHORIZATION_TOKEN): the "
                        "endpoint answered HTTP 401\n")
    assert len(server.calls) == 1          # a 4xx is not retried


def test_a_container_full_uri_over_http_to_another_host_is_refused_before_any_request(env):
    p = resolve(env(AWS_REGION="us-west-2", AWS_CONTAINER_CREDENTIALS_FULL_URI="http://192.0.2.7/creds"))
    assert p.returncode == 78
    assert "(AWS_CONTAINER_CREDENTIALS_FULL_URI): over http only a loopback address, 169.254.170.2, " \
           "169.254.170.23 or [fd00:ec2::23] may be used; else https" in p.stderr


def test_imds_serves_only_requests_with_a_session_token(ledger):
    with ImdsServer(ledger) as imds:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{imds.url}{ImdsServer.ROLES}", timeout=5)
        assert e.value.code == 401
        put = urllib.request.Request(f"{imds.url}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(put, timeout=5).read().decode()
        get = urllib.request.Request(f"{imds.url}{ImdsServer.ROLES}", headers={"X-aws-ec2-metadata-token": token})
        assert urllib.request.urlopen(get, timeout=5).read() == b"outboxd-instance"


def test_instance_metadata_gives_region_and_credentials_with_one_token_fetched_again_on_401(ledger, env):
    with ImdsServer(ledger, region="eu-west-3", lifetime=1200) as imds:
        r = Resolver(env(AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url + "/"),
                     times=3)
        assert r.line() == "region eu-west-3"
        lines = [r.line(), r.again()]
        imds.drop_tokens()                  # as when the token's TTL ends
        lines.append(r.again())
        status, out, err = r.finish()
    assert status == 0, err
    source = f"instance metadata (IMDSv2, {imds.url}/)"
    assert lines == [credentials_line(c, source) for c in ledger.issued]
    roles, role = ImdsServer.ROLES, ImdsServer.ROLES + "outboxd-instance"
    assert [(c.method, c.path, c.status) for c in imds.calls] == [
        ("PUT", "/latest/api/token", 200), ("GET", "/latest/meta-data/placement/region", 200),
        ("GET", roles, 200), ("GET", role, 200),
        ("GET", roles, 200), ("GET", role, 200),
        ("GET", roles, 401), ("PUT", "/latest/api/token", 200), ("GET", roles, 200), ("GET", role, 200)]
    assert {c.headers["x-aws-ec2-metadata-token-ttl-seconds"] for c in imds.token_puts()} == {"21600"}
    assert not any(s in "".join(lines) + out + err for s in secrets_of(ledger))


def test_instance_metadata_without_session_tokens_is_read_without_one_unless_imdsv1_is_disabled(ledger, env):
    with ImdsServer(ledger, v1_only=True) as imds:
        base = dict(AWS_REGION="eu-west-3", AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        p = resolve(env(**base))
        calls = [(c.method, c.path, c.status, "x-aws-ec2-metadata-token" in c.headers) for c in imds.calls]
        refused = resolve(env(**base, AWS_EC2_METADATA_V1_DISABLED="true"))
    assert p.returncode == 0, p.stderr
    assert credentials_line(ledger.issued[0], f"instance metadata (IMDSv2, {imds.url})") in p.stdout.splitlines()
    roles = ImdsServer.ROLES
    assert calls == [("PUT", "/latest/api/token", 404, False), ("GET", roles, 200, False),
                     ("GET", roles + "outboxd-instance", 200, False)]
    assert refused.returncode == 78
    assert refused.stderr.endswith(f"the last source failed: instance metadata (IMDSv2, {imds.url}): the token "
                                   "request (PUT /latest/api/token) answered HTTP 404\n"), refused.stderr
    assert len(ledger.issued) == 1


def test_an_instance_without_a_role_says_so(ledger, env):
    with ImdsServer(ledger, role=None) as imds:
        p = resolve(env(AWS_REGION="eu-west-3", AWS_EC2_METADATA_DISABLED="false",
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url))
    assert p.returncode == 78
    assert p.stderr.endswith(f"the last source failed: instance metadata (IMDSv2, {imds.url}): the instance has "
                             "no IAM role (instance profile)\n"), p.stderr


def test_disabled_instance_metadata_is_not_asked_and_no_credentials_lists_what_was_tried(ledger, env):
    with ImdsServer(ledger) as imds:
        p = resolve(env(AWS_REGION="eu-west-3", AWS_EC2_METADATA_DISABLED="TRUE",
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url))
    assert p.returncode == 78
    assert imds.calls == []
    assert p.stderr.startswith("error: no AWS credentials found; tried config (aws.access_key_id, "
                               "aws.secret_access_key); environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); "
                               "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN); shared credentials file ")
    assert p.stderr.endswith("; container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, "
                             "AWS_CONTAINER_CREDENTIALS_FULL_URI); instance metadata (AWS_EC2_METADATA_DISABLED is "
                             "true)\n")


MINIMAL = """\
table:
  name: outbox
sinks:
  - name: out
    type: stdout
"""


def aws_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith(("region: ", "credentials: "))]


def test_check_says_the_source_and_the_region_without_calling_them(ledger, tmp_config, run_outboxd, tmp_path):
    cfg = tmp_config(MINIMAL)
    token_file = tmp_path / "token"
    with StsServer(ledger) as sts, ImdsServer(ledger) as imds:
        web = run_outboxd("check", "-c", cfg, env={
            "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_STS": sts.url, "AWS_ROLE_ARN": ROLE,
            "AWS_WEB_IDENTITY_TOKEN_FILE": token_file, "AWS_EC2_METADATA_DISABLED": None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        instance = run_outboxd("check", "-c", cfg, env={
            "AWS_EC2_METADATA_DISABLED": None, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        assert (sts.calls, imds.calls) == ([], [])
    assert (web.returncode, instance.returncode) == (0, 0), web.stderr + instance.stderr
    assert aws_lines(web.stdout) == ["region: eu-west-1 (AWS_REGION)",
                                     f"credentials: web identity (role {ROLE}, token file {token_file})"]
    assert aws_lines(instance.stdout) == [f"region: from instance metadata {imds.url}",
                                          f"credentials: instance metadata (IMDSv2, {imds.url})"]


def test_check_says_when_nothing_is_found_and_refuses_what_run_would(tmp_config, run_outboxd):
    cfg = tmp_config(MINIMAL)
    none = run_outboxd("check", "-c", cfg)
    assert none.returncode == 0, none.stderr
    lines = aws_lines(none.stdout)
    assert lines[0].startswith("region: none found: set aws.region, AWS_REGION or AWS_DEFAULT_REGION")
    assert lines[1].startswith("credentials: none found (tried config (aws.access_key_id, ")
    keys = tmp_config("aws:\n  region: eu-north-1\n  access_key_id: AKIDCHECK\n  secret_access_key: s3cr3t-x\n"
                      + MINIMAL, name="keys.yaml")
    static = run_outboxd("check", "-c", keys)
    assert aws_lines(static.stdout) == ["region: eu-north-1 (aws.region)", "credentials: config (aws.access_key_id)"]
    assert "s3cr3t-x" not in static.stdout
    bad = run_outboxd("check", "-c", cfg, env={"AWS_REGION": "eu-west-1",
                                               "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.7/x"})
    assert bad.returncode == 78
    assert bad.stderr == (f"{cfg}: error: container endpoint http://192.0.2.7/x (AWS_CONTAINER_CREDENTIALS_FULL_URI):"
                          " over http only a loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23] may "
                          "be used; else https\n")


class _Silent(LoopbackServer):
    """Accepts connections and never answers: instance metadata on a host it does not
    serve, as seen through a firewall."""

    def serve_connection(self, sock, client_address, number):
        self._stopping.wait(30)


def test_instance_metadata_that_never_answers_is_given_up_after_two_one_second_tries(env):
    with _Silent() as silent:
        started = time.monotonic()
        p = resolve(env(AWS_REGION="eu-west-3", AWS_EC2_METADATA_DISABLED=None,
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=silent.url))
        took = time.monotonic() - started
    assert p.returncode == 69, p.stderr
    assert p.stderr.startswith("error: no AWS credentials found (tried "), p.stderr
    assert f"the last source failed: instance metadata (IMDSv2, {silent.url}): " in p.stderr
    assert silent.connections == 2
    assert 1.9 < took < 8, took
