"""`outboxd init`: creates the outbox and lease tables, verifies existing ones."""

from outboxd_config import ddb_config


def describe(client, name):
    return client.describe_table(TableName=name)["Table"]


def test_init_creates_outbox_table_with_stream_and_ttl_and_lease_table(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(ddb_config(ddb.endpoint, table="orders-outbox", leases="orders-leases"))
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "outbox table orders-outbox: created" in r.stdout
    assert "lease table orders-leases: created" in r.stdout

    c = ddb.client()
    t = describe(c, "orders-outbox")
    assert t["TableStatus"] == "ACTIVE"
    assert {(k["AttributeName"], k["KeyType"]) for k in t["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert {(a["AttributeName"], a["AttributeType"]) for a in t["AttributeDefinitions"]} == {("pk", "S"), ("sk", "S")}
    assert t["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = c.describe_time_to_live(TableName="orders-outbox")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    assert ttl["AttributeName"] == "ttl"

    leases = describe(c, "orders-leases")
    assert [(k["AttributeName"], k["KeyType"]) for k in leases["KeySchema"]] == [("leaseKey", "HASH")]


def test_second_init_changes_nothing(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(ddb_config(ddb.endpoint, table="again", leases="again-leases"))
    assert run_outboxd("init", "-c", cfg).returncode == 0
    c = ddb.client()
    before = describe(c, "again")
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "outbox table again: exists and matches" in r.stdout
    assert "lease table again-leases: exists and matches" in r.stdout
    after = describe(c, "again")
    assert after["CreationDateTime"] == before["CreationDateTime"]
    assert after["LatestStreamArn"] == before["LatestStreamArn"]


def test_lease_table_defaults_to_outbox_name_with_leases_suffix(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(ddb_config(ddb.endpoint, table="plain"))
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "lease table plain-leases: created" in r.stdout


def test_init_reports_every_difference_of_a_mismatching_table(ddb, tmp_config, run_outboxd):
    c = ddb.client()
    c.create_table(TableName="wrong", BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    cfg = tmp_config(ddb_config(ddb.endpoint, table="wrong"))
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 78, (r.stdout, r.stderr)
    assert "table wrong exists but does not match" in r.stderr
    assert "partition (HASH) key is 'id', expected 'pk'" in r.stderr
    assert "no sort (RANGE) key, expected 'sk' (S)" in r.stderr
    assert "stream is not enabled, expected NEW_AND_OLD_IMAGES" in r.stderr
    assert "time to live is DISABLED, expected ENABLED on attribute 'ttl'" in r.stderr


def test_init_reports_wrong_stream_view_and_key_type(ddb, tmp_config, run_outboxd):
    c = ddb.client()
    c.create_table(TableName="keysonly", BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "N"}],
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                   StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    c.update_time_to_live(TableName="keysonly",
                          TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
    cfg = tmp_config(ddb_config(ddb.endpoint, table="keysonly"))
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 78
    assert "key 'sk' has type N, expected S" in r.stderr
    assert "stream view type is KEYS_ONLY, expected NEW_AND_OLD_IMAGES" in r.stderr
    assert "time to live is on attribute 'expiresAt', expected 'ttl'" in r.stderr
    assert "partition (HASH)" not in r.stderr


def test_init_creates_provisioned_table_when_configured(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(ddb_config(ddb.endpoint, table="prov").replace(
        "  name: prov\n", "  name: prov\n  billing_mode: provisioned\n  read_capacity: 7\n  write_capacity: 9\n"))
    r = run_outboxd("init", "-c", cfg)
    assert r.returncode == 0, r.stderr
    t = describe(ddb.client(), "prov")
    assert t["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert t["ProvisionedThroughput"]["WriteCapacityUnits"] == 9


def test_init_without_reachable_dynamodb_says_so_and_exits_69(tmp_config, run_outboxd):
    from harness import free_port
    cfg = tmp_config(ddb_config(f"http://127.0.0.1:{free_port()}", table="x").replace(
        "  secret_access_key: testsecret\n", "  secret_access_key: testsecret\n  max_attempts: 2\n"))
    r = run_outboxd("init", "-c", cfg, timeout=60)
    assert r.returncode == 69, (r.stdout, r.stderr)
    assert "Couldn't connect" in r.stderr or "connect" in r.stderr.lower()
    assert "testsecret" not in r.stderr
