"""kinesalite (npm), the Kinesis emulator, on a loopback port (AWS JSON 1.1; it does not
check signatures). In memory by default; with path= it keeps its streams in a LevelDB
directory, so stop() and start() again is an outage that loses nothing.

    with Kinesalite() as k:
        k.create_stream("events", shards=2)
        ... PutRecords to k.endpoint ...
        records = k.read_all("events", want=10)
"""

import socket
import time

from .child_server import NODE, NODE_MODULES, ChildServer
from .ddb_local import aws_client

# kinesalite keeps its streams in an Array by name: a stream named like an Array method
# ("keys", "map", ...) crashes it.
CLI = str(NODE_MODULES / "kinesalite" / "cli.js")


class Kinesalite(ChildServer):
    name = "kinesalite"

    def __init__(self, port=None, log_dir=None, path=None):
        super().__init__(port, log_dir)
        self.path = path

    def command(self):
        # Streams are ACTIVE at once (a test creates one and writes to it), and the tests of a
        # module share the emulator's account: room for their shards beyond AWS's default 10.
        cmd = [NODE, CLI, "--port", str(self.port), "--createStreamMs", "0", "--deleteStreamMs", "0",
               "--updateStreamMs", "0", "--shardLimit", "200"]
        return cmd + (["--path", str(self.path)] if self.path else [])

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            pass
        self.client(max_attempts=1).list_streams()
        return True

    def client(self, max_attempts=3, **config):
        return aws_client("kinesis", self.endpoint, max_attempts, **config)

    def create_stream(self, name, shards=1):
        c = self.client()
        c.create_stream(StreamName=name, ShardCount=shards)
        deadline = time.monotonic() + 10
        while c.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, f"stream {name} not ACTIVE after 10 s"
            time.sleep(0.05)
        return name

    def shard_records(self, name):
        """{shard id: [record, ...]} of every shard, each read from TRIM_HORIZON to its end
        (records as boto3 gives them: Data bytes, PartitionKey, SequenceNumber)."""
        c = self.client()
        out = {}
        for shard in c.list_shards(StreamName=name)["Shards"]:
            it = c.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = []
            while it:
                page = c.get_records(ShardIterator=it, Limit=10000)
                records += page["Records"]
                if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                    break
                it = page.get("NextShardIterator")
            out[shard["ShardId"]] = records
        return out

    def read_all(self, name, want=0, timeout=60):
        """Every record of the stream, shard after shard, each shard in its order; waits up to
        timeout for at least want of them."""
        deadline = time.monotonic() + timeout
        while True:
            records = [r for shard in self.shard_records(name).values() for r in shard]
            if len(records) >= want or time.monotonic() >= deadline:
                return records
            time.sleep(0.5)
