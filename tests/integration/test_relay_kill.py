"""kill -9 of the relay at random moments: nothing lost, duplicates bounded (a fresh DynamoDB Local)."""

import random
import signal
import time

from relay_util import (check_per_key_order, create_outbox_table, duplicates, http_messages, http_sink,
                        relay_config, scan_items, spawn_producer, wait_until)


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_stay_bounded(ddb, tmp_config, spawn_outboxd,
                                                                          http_receiver):
    table = create_outbox_table(ddb, "outbox_kill")
    max_in_flight = 8
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url),
                                  max_in_flight=max_in_flight))
    producer = spawn_producer(ddb.endpoint, table, 3000, 30, threads=8, rate=150)
    rng = random.Random(20261126)
    kills = 0
    d = spawn_outboxd("run", "-c", cfg)
    while kills < 6:
        time.sleep(rng.uniform(0.8, 3.0))
        d.stop(signal.SIGKILL)
        kills += 1
        d = spawn_outboxd("run", "-c", cfg)
    assert producer.wait(timeout=120) == 0, producer.stderr.read()
    assert http_receiver.wait_for(3000, timeout=120), d.output()
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 60)
    time.sleep(1)

    msgs = http_messages(http_receiver)
    dups = duplicates(msgs)
    print(f"\n{kills} kills: {len({m[2] for m in msgs})} distinct messages, {dups} duplicates "
          f"(bound {kills * max_in_flight})")
    assert len({m[2] for m in msgs}) == 3000
    assert dups <= kills * max_in_flight
    assert check_per_key_order(msgs) == []
    assert d.stop() == 0
