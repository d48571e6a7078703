"""The kafka sink against librdkafka's mock cluster (3 brokers, tests/tools/kafka_mock.c),
consumed back with confluent_kafka: the relay's 5,000 messages with an outage of every
broker, the CloudEvents Kafka binding, the Java partitioner, size limit, rejections,
retriable broker errors, a fatal producer error, `check`, the SASL password and the MSK IAM
token."""

import base64
import json
import time


from broker_contract import BrokerRun, Received, check_ce
from harness.kafka_mock import java_partition
from relay_util import dlq_sink, lines_of, relay_config, scan_items, wait_until, with_relay

PARTITIONS = 6


def kafka_sink(name, bootstraps, topic, extra=""):
    return f"  - name: {name}\n    type: kafka\n    brokers: {bootstraps}\n    topic: {topic}\n{extra}"


def received(record):
    """Received of a record in the binary binding: the ce_ headers without their prefix."""
    attrs = {k[3:]: v for k, v in record.headers.items() if k.startswith("ce_")}
    return Received(record.key, json.loads(record.value)["n"], attrs.get("id"), attrs)


def message(sk, pk="k1", payload=b'{"n":0}', **kw):
    """A sink_publish input line."""
    return {"pk": pk, "sk": sk, "messageType": "T", "payload_b64": base64.b64encode(payload).decode(), **kw}


def test_5000_messages_arrive_once_in_key_order_on_javas_partitions_through_an_outage_of_every_broker(
        ddb, tmp_config, spawn_outboxd, kafka_mock):
    kafka_mock.create_topic("orders", PARTITIONS)
    run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_kafka",
                    kafka_sink("events", kafka_mock.bootstraps, "orders", "    timeout: 5s\n"), default_sink="events")

    class EveryBroker:
        """The outage: every broker of the cluster down, then up; what was delivered meanwhile."""
        def stop(self):
            self.at = run.delivered()
            kafka_mock.all_down()

        def start(self):
            self.during = run.delivered() - self.at
            kafka_mock.all_up()

    outage = EveryBroker()
    run.through_an_outage(outage)
    records = kafka_mock.consume("orders", want=run.count, timeout=180)
    got = [received(r) for r in records]
    # A record the brokers took just before the outage whose report the outage lost is
    # sent again: at most what was in flight (max_in_flight 64), twice over for slack.
    dup = run.check(got, max_duplicates=128)
    # Records the brokers had before they went down may have been delivered meanwhile, no more.
    assert outage.during <= 64, (outage.at, outage.during)
    ids = {r[0]: r[1] for r in run.rows}
    for r, g in zip(records, got):
        assert r.key == ids[g.id] == g.attrs["partitionkey"]
        assert r.partition == java_partition(r.key, PARTITIONS), (r.key, r.partition)
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-n"] == str(g.n)
        check_ce(g.attrs, run.table, structured=False)
    print(f"duplicates: {dup}")
    run.stop()


def test_an_oversize_message_is_dead_lettered_at_once_and_a_rejected_one_after_max_attempts(
        ddb, tmp_config, spawn_outboxd, run_outboxd, kafka_mock, tmp_path, table):
    kafka_mock.create_topic("rejects", 2)
    dlq = tmp_path / "dlq.jsonl"
    sinks = kafka_sink("events", kafka_mock.bootstraps, "rejects",
                       "    properties: { message.max.bytes: \"10000\" }\n") + dlq_sink(dlq)
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, sinks, default_sink="events"), max_attempts=3,
                                dead_letter_sink="dlq"))
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * 20000}))
    oversize = run_outboxd("add", "-c", cfg, "--type", "Big", "--payload-file", big, "--partition-key", "a")
    assert oversize.returncode == 0, oversize.stderr
    # INVALID_RECORD is permanent: librdkafka does not retry it, each attempt of the
    # relay is one Produce request.
    kafka_mock.produce_errors(3, "INVALID_RECORD")
    rejected = run_outboxd("add", "-c", cfg, "--type", "Small", "--payload", '{"n":1}', "--partition-key", "b")
    assert rejected.returncode == 0, rejected.stderr
    d = spawn_outboxd("run", "-c", cfg)
    assert wait_until(lambda: len(lines_of(dlq)) == 2, 60), d.output()[-4000:]
    reasons = {x["id"]: x["deadletterreason"] for x in lines_of(dlq)}
    assert reasons[oversize.stdout.strip()] == ("too_large: the record (key 1, value 20011 bytes, and headers) is "
                                                "over the producer's message.max.bytes (10000) (topic rejects)")
    assert reasons[rejected.stdout.strip()] == ("kafka: Broker: Broker failed to validate record (INVALID_RECORD, "
                                                "topic rejects)")
    items = {i["sk"]["S"]: i for i in scan_items(ddb, table)}
    assert items[oversize.stdout.strip()]["retryCount"]["N"] == "1"
    assert items[rejected.stdout.strip()]["retryCount"]["N"] == "3"
    assert all("deadLetteredAt" in i for i in items.values())
    assert d.stop() == 0


def test_retriable_broker_errors_are_retried_by_the_producer_and_everything_arrives_once(kafka_mock, sink_publish):
    kafka_mock.create_topic("retriable", 3)
    kafka_mock.produce_errors(4, "NOT_LEADER_FOR_PARTITION", "REQUEST_TIMED_OUT")
    msgs = [message(f"m{i}", pk=f"k{i % 5}", payload=json.dumps({"n": i}).encode()) for i in range(40)]
    r = sink_publish({"type": "kafka", "brokers": kafka_mock.bootstraps, "topic": "retriable"}, msgs,
                     "--batch", "10")
    assert [x["result"] for x in r.results] == ["ack"] * 40, r.results
    records = kafka_mock.consume("retriable", want=40, timeout=60)
    assert sorted(json.loads(x.value)["n"] for x in records) == list(range(40))


def test_a_fatal_producer_error_retries_its_messages_and_a_new_producer_delivers(kafka_mock, sink_publish):
    kafka_mock.create_topic("fatal", 1)
    # The head-of-line request failing with OUT_OF_ORDER_SEQUENCE_NUMBER: the idempotent
    # producer can no longer tell what the broker has, and fails for good.
    kafka_mock.produce_errors(1, "OUT_OF_ORDER_SEQUENCE_NUMBER")
    r = sink_publish({"type": "kafka", "brokers": kafka_mock.bootstraps, "topic": "fatal"},
                     [message("first"), message("second")], "--batch", "1")
    assert r.results[0]["result"] == "retry", r.results
    assert r.results[1]["result"] == "ack", r.results
    assert "a new producer replaces the failed one" in r.stderr
    assert [x.headers["ce_id"] for x in kafka_mock.consume("fatal", want=1, timeout=30)] == ["second"]


def test_route_topic_overrides_the_sinks_and_message_headers_travel(kafka_mock, sink_publish):
    kafka_mock.create_topic("routed.T", 1)
    r = sink_publish({"type": "kafka", "brokers": kafka_mock.bootstraps, "topic": "unused"},
                     [message("m1", destination="routed.{messageType}", headers={"traceparent": "00-1-2-01",
                                                                                 "ce_id": "spoofed"},
                              error_info="attempts: HTTP 400")])
    assert [x["result"] for x in r.results] == ["ack"]
    [rec] = kafka_mock.consume("routed.T", want=1, timeout=30)
    assert rec.headers["ce_id"] == "m1"
    assert rec.headers["traceparent"] == "00-1-2-01"
    assert rec.headers["ce_deadletterreason"] == "attempts: HTTP 400"


def test_check_reports_a_bad_librdkafka_property_at_its_line(tmp_config, run_outboxd):
    cfg = tmp_config("""\
        aws:
          region: us-east-1
        table:
          name: outbox
        sinks:
          - name: events
            type: kafka
            brokers: 127.0.0.1:9092
            topic: orders
            properties:
              linger.ms: "5"
              compression.type: brotli
              enable.idempotence: "false"
        """)
    p = run_outboxd("check", "-c", cfg)
    assert p.returncode == 78
    assert p.stderr.splitlines() == [
        f"{cfg}:12:7: error: properties of kafka sink 'events': librdkafka refuses 'compression.type': "
        "Invalid value \"brotli\" for configuration property \"compression.codec\"",
        f"{cfg}:13:7: error: properties of kafka sink 'events': 'enable.idempotence' cannot be set: the sink's "
        "producer is idempotent: enable.idempotence must stay true"]


def test_the_sasl_password_is_never_in_the_log(ddb, tmp_config, spawn_outboxd, run_outboxd, kafka_mock, table):
    password = "pw-Zq81-never-shown"
    sinks = kafka_sink("events", kafka_mock.bootstraps, "sasl",
                       "    sasl_mechanism: scram-sha-512\n    sasl_username: outboxd\n"
                       "    sasl_password: ${KAFKA_PASSWORD}\n    timeout: 2s\n"
                       "    properties: { debug: \"security,broker,conf,protocol\" }\n")
    cfg = tmp_config(relay_config(ddb.endpoint, table, sinks, default_sink="events", log_level="debug"))
    env = {"KAFKA_PASSWORD": password}
    check = run_outboxd("check", "-c", cfg, env=env)
    assert check.returncode == 0, check.stderr
    assert run_outboxd("add", "-c", cfg, "--type", "T", "--payload", "{}", env=env).returncode == 0
    d = spawn_outboxd("run", "-c", cfg, env=env)
    # The mock speaks no SASL: the handshake fails, the delivery is retried.
    assert d.wait_for_output("delivery failed", 60), d.output()[-4000:]
    assert d.stop() == 0
    log = d.output()
    assert "SCRAM-SHA-512" in log and "sasl.username" in log  # librdkafka's debug lines are there
    assert password not in log and password not in check.stdout + check.stderr


def test_aws_msk_iam_presents_the_token_botocores_presigner_makes(kafka_mock, sink_publish, tmp_path):
    """aws_msk_iam: the token librdkafka presents (SASL/OAUTHBEARER over TLS, caught by a
    listener that speaks just that much Kafka: the mock cluster speaks no SASL) is the
    kafka-cluster:Connect URL presigned for the sink's region with the relay's keys, signed
    now: exactly what aws-msk-iam-sasl-signer's way with botocore makes at that time."""
    import datetime
    import urllib.parse

    from harness.kafka_mock import SaslTokenCatcher
    from test_msk_iam_botocore import botocore_token
    with SaslTokenCatcher(tmp_path) as catcher:
        t0 = time.time()
        sink_publish({"type": "kafka", "brokers": catcher.address, "topic": "t", "sasl_mechanism": "aws_msk_iam",
                      "region": "eu-west-1", "tls_verify": False, "timeout": "1s"}, [message("m1")])
        token = catcher.wait_token()
    assert token, "no token was presented"
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert t0 - 5 <= signed_at.replace(tzinfo=datetime.timezone.utc).timestamp() <= time.time() + 5
    assert token == botocore_token("AKIDTEST", "testsecret", None, "eu-west-1", signed_at)
    assert query["X-Amz-Credential"].endswith("/eu-west-1/kafka-cluster/aws4_request")
