"""Config text for tests that talk to DynamoDB Local (or a proxy in front of it)."""

import os
from pathlib import Path

from harness import REPO_ROOT


def aws_section(endpoint):
    """The `aws:` section for DynamoDB Local (or a proxy) with the tests' static keys."""
    return f"""\
aws:
  region: us-east-1
  endpoint: {endpoint}
  access_key_id: AKIDTEST
  secret_access_key: testsecret
"""


def ddb_config(endpoint, table="outbox", leases=None, extra=""):
    """A minimal outboxd config with static keys, a stdout sink and `extra` appended."""
    text = aws_section(endpoint) + f"""\
table:
  name: {table}
"""
    if leases:
        text += f"leases:\n  table: {leases}\n"
    text += "sinks:\n  - name: out\n    type: stdout\n" + extra
    return text


def tool(name):
    """Path of a test tool built from tests/tools/NAME.c."""
    build = Path(os.environ.get("BUILD") or "build")
    if not build.is_absolute():
        build = REPO_ROOT / build
    return str(build / "tools" / name)


def tool_env():
    """Environment for test tools: dummy keys, no proxies, no real AWS files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="testsecret",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true")
    return env
