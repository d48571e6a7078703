"""Integration-test harness for outboxd: DynamoDB Local, a fault-injecting proxy, helpers.

Everything here talks to 127.0.0.1 only.
"""

from .util import (REPO_ROOT, TESTS_DIR, free_port, wait_port, run_dir, pid_alive,
                   processes_matching, raw_post)
from .ddb_local import (DynamoDBLocal, aws_client, find_jar_dir, REGION, ACCESS_KEY,
                        SECRET_KEY, DEFAULT_JVM_FLAGS)
from .fault_proxy import FaultProxy, Rule, RequestRecord, ACTIONS
from .outboxd import (outboxd_path, outboxd_env, write_config, run_outboxd_cmd,
                      OutboxdProcess)

__all__ = [
    "REPO_ROOT", "TESTS_DIR", "free_port", "wait_port", "run_dir", "pid_alive",
    "processes_matching", "raw_post", "DynamoDBLocal", "aws_client", "find_jar_dir", "REGION",
    "ACCESS_KEY", "SECRET_KEY", "DEFAULT_JVM_FLAGS", "FaultProxy", "Rule", "RequestRecord",
    "ACTIONS", "outboxd_path", "outboxd_env", "write_config", "run_outboxd_cmd",
    "OutboxdProcess",
]
from .topology_proxy import TopologyProxy  # noqa: E402

__all__ += ["TopologyProxy"]
