"""`outboxd check` refuses what `run` refuses in the file: under systemd the unit's
ExecStartPre check must stop a config that `run` would exit 78 on, or Restart=on-failure loops."""

ABSENT_SINK = """\
aws:
  region: us-east-1
table:
  name: outbox
sinks:
  - name: events
    type: pulsar
    url: pulsar://127.0.0.1:6650
"""


def test_check_and_run_both_refuse_a_sink_type_this_build_has_no_sink_for(tmp_config, run_outboxd):
    cfg = tmp_config(ABSENT_SINK)
    error = f"{cfg}:7:11: error: unknown sink type 'pulsar' in sink 'events' (this build has: http, file, stdout, kafka, sqs, sns, eventbridge, kinesis)"
    check = run_outboxd("check", "-c", cfg)
    run = run_outboxd("run", "-c", cfg, timeout=30)
    assert (check.returncode, check.stderr.splitlines()) == (78, [error])
    assert (run.returncode, run.stderr.splitlines()) == (78, [error])


def test_check_reports_the_http_rules_with_their_place_in_the_file(tmp_config, run_outboxd):
    cfg = tmp_config("""\
        table:
          name: outbox
        sinks:
          - name: hook
            type: http
            url: http://127.0.0.1:9/hook
            basic_username: relay
            webhook_secret: whsec_not!base64
        """)
    r = run_outboxd("check", "-c", cfg)
    assert r.returncode == 78, r.stdout
    assert r.stderr.splitlines() == [
        f"{cfg}:4:5: error: missing required key 'basic_password' in http sink 'hook' (basic_username is set)",
        f"{cfg}:8:21: error: 'webhook_secret' of http sink 'hook' must be 'whsec_' followed by base64 "
        "(the value is not shown: it is secret)",
    ]
