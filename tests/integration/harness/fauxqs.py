"""fauxqs (npm), the SQS and SNS emulator, on a loopback port: SQS in the AWS JSON
protocol, SNS in the query protocol, FIFO queues and topics, SNS-to-SQS subscriptions. It
does not check signatures. Queue URLs are http://127.0.0.1:PORT/000000000000/NAME.

Debian's botocore (1.29) still speaks SQS's query protocol, which fauxqs does not serve:
sqs() is a small client of the JSON protocol instead (what newer SDKs send), with
botocore's signer; sns() is boto3's."""

import contextlib
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request

from .child_server import NODE, NODE_MODULES, ChildServer
from .ddb_local import aws_client

CLI = str(NODE_MODULES / "fauxqs" / "dist" / "cli.js")


class Fauxqs(ChildServer):
    name = "fauxqs"

    def command(self):
        return [NODE, CLI]

    def env(self):
        env = dict(os.environ)
        env.update(FAUXQS_PORT=str(self.port), FAUXQS_HOST="127.0.0.1", FAUXQS_LOGGER="false",
                   FAUXQS_DEFAULT_REGION="us-east-1")
        return env

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            pass
        self.sqs().call("ListQueues")
        return True

    def sqs(self, max_attempts=1):
        """An SQS client of the emulator: sqs().call("CreateQueue", QueueName="q")."""
        return SqsJson(self.endpoint)

    def sns(self, max_attempts=2, **config):
        return aws_client("sns", self.endpoint, max_attempts, **config)


class SqsError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body
        self.code = body.get("__type", "").rsplit("#", 1)[-1] if isinstance(body, dict) else ""


class SqsJson:
    """SQS over the AWS JSON 1.0 protocol, signed by botocore with the tests' dummy keys."""

    def __init__(self, endpoint, region="us-east-1"):
        self.endpoint, self.region = endpoint, region

    def call(self, operation, timeout=30, **params):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from .ddb_local import ACCESS_KEY, SECRET_KEY
        body = json.dumps(params).encode()
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0",
                                  "X-Amz-Target": f"AmazonSQS.{operation}"})
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "sqs", self.region).add_auth(req)
        r = urllib.request.Request(self.endpoint + "/", data=body, method="POST", headers=dict(req.headers))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(r, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                raise SqsError(e.code, json.loads(raw)) from None
            except ValueError:
                raise SqsError(e.code, raw.decode(errors="replace")) from None

    def create_queue(self, name, fifo=False, **attributes):
        attrs = {k: str(v) for k, v in attributes.items()}
        if fifo:
            attrs["FifoQueue"] = "true"
        return self.call("CreateQueue", QueueName=name, Attributes=attrs)["QueueUrl"]

    def receive_all(self, queue_url, want, timeout=120, attribute_names=("All",)):
        """Receives (and deletes) until want messages came or timeout; the messages in the
        order received."""
        import time
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            r = self.call("ReceiveMessage", QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                          MessageSystemAttributeNames=list(attribute_names),
                          AttributeNames=list(attribute_names), MessageAttributeNames=["All"])
            msgs = r.get("Messages", [])
            out += msgs
            if msgs:
                self.call("DeleteMessageBatch", QueueUrl=queue_url,
                          Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
        return out


APP = str(NODE_MODULES / "fauxqs" / "dist" / "app.js")


class PersistentFauxqs(Fauxqs):
    """fauxqs keeping its queues, topics, subscriptions and messages in SQLite under data_dir,
    so that stop() and start() are an outage it comes back from as SNS and SQS would (the CLI
    keeps everything in memory: this starts it through its own startFauxqs({dataDir})). Its
    FIFO deduplication cache is not kept: a message sent again after the restart is a duplicate."""
    name = "fauxqs-persistent"

    def __init__(self, data_dir, port=None, log_dir=None):
        super().__init__(port=port, log_dir=log_dir)
        self.data_dir = str(data_dir)

    def command(self):
        script = f"import {{ startFauxqs }} from {json.dumps(APP)}; startFauxqs({{ dataDir: {json.dumps(self.data_dir)} }});"
        return [NODE, "--no-warnings", "--input-type=module", "-e", script]


@contextlib.contextmanager
def persistent_fauxqs(spare_dir):
    """A started PersistentFauxqs whose SQLite files are in memory (/dev/shm; under spare_dir
    where there is none): SQLite's syncs to a disk made the emulator 5 times slower. Stopped,
    and its files removed, at the end."""
    data = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else spare_dir)
    try:
        with PersistentFauxqs(data) as server:
            yield server
    finally:
        shutil.rmtree(data, ignore_errors=True)


def sns_topic_into_queue(server, name, fifo=False):
    """A topic NAME (NAME.fifo when fifo) with a queue of the same name subscribed to it with
    RawMessageDelivery (the message as the body, its attributes as the queue message's):
    (topic ARN, queue URL)."""
    suffix = ".fifo" if fifo else ""
    sns, sqs = server.sns(), server.sqs()
    topic = sns.create_topic(Name=name + suffix, Attributes={"FifoTopic": "true"} if fifo else {})["TopicArn"]
    queue = sqs.create_queue(name + suffix, fifo=fifo)
    arn = sqs.call("GetQueueAttributes", QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue


def sns_fault_proxy(upstream, rules=None):
    """A FaultProxy (harness/fault_proxy.py) whose injected errors are SNS's: the query
    protocol's XML <ErrorResponse> with the rule's error_type as <Code> (e.g.
    Rule(action="error", error_type="Throttled", match_body="Action=PublishBatch")).
    Not started."""
    from xml.sax.saxutils import escape

    from .fault_proxy import FaultProxy

    class SnsFaultProxy(FaultProxy):
        @staticmethod
        def _send(c, status, reason, headers, payload, keep):
            ctype = dict((k.lower(), v) for k, v in headers).get("content-type", "")
            if status >= 400 and ctype.startswith("application/x-amz-json"):
                err = json.loads(payload)
                code = err.get("__type", "").rpartition("#")[2]
                fault = "Receiver" if status >= 500 else "Sender"
                payload = (f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
                           f'<Type>{fault}</Type><Code>{code}</Code><Message>{escape(err.get("message", ""))}</Message>'
                           f'</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>'
                           ).encode()
                headers = [("Content-Type", "text/xml")]
            FaultProxy._send(c, status, reason, headers, payload, keep)

    return SnsFaultProxy(upstream, rules=rules)
