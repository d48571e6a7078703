"""TopologyProxy: presents DynamoDB Local's one-shard stream as an AWS-like shard tree.

DynamoDB Local gives every stream a single shard that never closes or splits. AWS streams
have many shards that close and spawn children (partition splits, rotation). This proxy
sits in front of DynamoDB Local on 127.0.0.1 and serves both APIs on one port:

* DynamoDB_20120810.* (and anything that is not about the attached stream) is passed
  through to upstream unchanged (status, headers, body; keep-alive pool to upstream).
* DynamoDBStreams_20120810.{DescribeStream,GetShardIterator,GetRecords} for the attached
  stream are answered from N virtual shards in AWS's response formats.

A background thread reads the real stream from upstream (TRIM_HORIZON, then every 20 ms
when idle) and appends each record to the open virtual shard whose hash range holds
crc32(<hash-key value>), so one key always lives in one open shard, every record is in
exactly one shard, shards keep upstream order, and the concatenation of all shards is the
upstream stream. After every `split_every` ingested records the open shard that received
the most records is closed (EndingSequenceNumber = its last record's seq, or its start
when empty) and replaced by two children halving its range (while open < max_open) or by
one child with the same range (rotation). Sequence numbers are the real upstream ones.

    proxy = TopologyProxy(ddb.endpoint, shards=8, split_every=50).start()
    c = ddb.client(endpoint=proxy.endpoint); s = ddb.streams_client(endpoint=proxy.endpoint)
    ... create a streamed table through the proxy (or DescribeTable it, or call any Streams
        op with its StreamArn): the proxy attaches to that stream ...
    proxy.wait_records(100); proxy.shards(); proxy.split_now(); proxy.trim(10)
    proxy.expire_iterators(); proxy.read_log()

Signatures are not verified (DynamoDB Local does not either).
"""

import base64
import bisect
import email.utils
import http.client
import json
import os
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler

from .server_base import LoopbackServer, RequestLog, Upstream, read_body

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
VALIDATION_TYPE = "com.amazon.coral.validate#ValidationException"
STREAMS_PREFIX = "DynamoDBStreams_20120810."
DYNAMODB_PREFIX = "DynamoDB_20120810."
HASH_SPACE = 1 << 32
GET_RECORDS_MAX = 1000
GET_RECORDS_MAX_BYTES = 1 << 20
ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")

_DEFAULT_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDTEST/20200101/us-east-1/dynamodb/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64)


class _ApiError(Exception):
    def __init__(self, status, etype, message, full_type=None):
        super().__init__(f"{etype}: {message}")
        self.status = status
        self.etype = etype
        self.message = message
        self.full_type = full_type or (ERROR_PREFIX + etype)

    def payload(self):
        return json.dumps({"__type": self.full_type, "message": self.message},
                          separators=(",", ":")).encode()


def _validation(msg):
    return _ApiError(400, "ValidationException", msg, VALIDATION_TYPE)


class _UpstreamError(Exception):
    def __init__(self, status, body):
        self.status = status
        self.body = body
        try:
            t = json.loads(body).get("__type", "")
        except (ValueError, AttributeError):
            t = ""
        self.etype = str(t).rpartition("#")[2]
        super().__init__(f"upstream {status} {self.etype or body[:200]!r}")


class _Shard:
    __slots__ = ("id", "parent", "lo", "hi", "start", "end", "records", "seqs", "created")

    def __init__(self, sid, parent, lo, hi, start):
        self.id = sid
        self.parent = parent
        self.lo = lo
        self.hi = hi
        self.start = start          # StartingSequenceNumber (string)
        self.end = None             # EndingSequenceNumber (string) once closed
        self.records = []           # upstream record dicts, upstream order
        self.seqs = []              # their SequenceNumbers as ints (for bisect)
        self.created = time.monotonic()

    @property
    def closed(self):
        return self.end is not None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Jetty"          # only used if a header is built by the base class

    def log_message(self, format, *args):     # quiet
        pass

    def _any(self):
        self.server._handle(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _any


class TopologyProxy(LoopbackServer):
    """See the module docstring.

    upstream:      DynamoDB Local endpoint ("http://127.0.0.1:PORT" or a port number).
    shards:        number of initial (root) virtual shards.
    split_every:   split after every this many ingested records (stream-wide); 0/None = never.
    max_open:      open shards allowed before splits become rotations (default 2*shards).
    page_size:     DescribeStream page size (default and maximum of Limit).
    iterator_ttl:  seconds an iterator stays valid (AWS: 900).
    table:         attach only to the stream of this table (default: the first one seen).
    hide_trimmed_shards: a closed shard whose records are all trimmed disappears from
                   DescribeStream (as AWS deletes shards past retention); its GetShardIterator
                   then gives ResourceNotFoundException.
    poll_interval: seconds between upstream GetRecords calls while the stream is idle.
    """
    thread_name = "topologyproxy"
    handler = _Handler

    def __init__(self, upstream_endpoint, shards=8, split_every=1000, max_open=None,
                 page_size=100, iterator_ttl=900.0, port=None, table=None,
                 hide_trimmed_shards=True, poll_interval=0.02, upstream_timeout=30.0):
        super().__init__(port)
        self._upstream = Upstream(upstream_endpoint, upstream_timeout)
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.n_shards = int(shards)
        self.split_every = int(split_every or 0)
        self.max_open = int(max_open) if max_open is not None else 2 * self.n_shards
        self.page_size = max(1, min(int(page_size), 100))
        self.iterator_ttl = float(iterator_ttl)
        self.table = table
        self.hide_trimmed_shards = hide_trimmed_shards
        self.poll_interval = poll_interval

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._token = uuid.uuid4().hex[:12]      # marks iterators issued by this instance
        self._pool = []
        self._ingest_thread = None
        self._attach_lock = threading.Lock()

        # stream state (guarded by _lock)
        self.stream_arn = None
        self._meta = None             # cached non-shard StreamDescription fields
        self._hash_key = None
        self._auth = None             # (Authorization, X-Amz-Date) copied from a client
        self._server_header = "Jetty(12.1.11)"
        self._shards = []             # creation order
        self._by_id = {}
        self._all = []                # (seq int, shard id) per ingested record, stream order
        self._seq_width = 21
        self._last_seq = None         # int
        self._id_clock = 0
        self._trim_seq = None         # int: records with seq <= this are trimmed
        self._trimmed_count = 0
        self._iter_serial = 0
        self._expired_upto = 0        # iterators with serial <= this are expired
        self._read_log = RequestLog()
        self.errors = []              # ingest errors (strings), for debugging

    # -- lifecycle ------------------------------------------------------------

    def _on_stop(self, deadline):
        with self._lock:
            pool, self._pool = self._pool, []
        for c in pool:
            c.close()
        if self._ingest_thread is not None:
            self._ingest_thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._cond.notify_all()

    # -- test controls --------------------------------------------------------------

    def attach(self, stream_arn, timeout=10.0):
        """Attach to stream_arn now (normally done lazily). Returns self."""
        self._attach(stream_arn, raise_errors=True, timeout=timeout)
        return self

    def expire_iterators(self):
        """Every iterator issued so far becomes expired (ExpiredIteratorException)."""
        with self._lock:
            self._expired_upto = self._iter_serial

    def trim(self, n):
        """Drop the first n records of the stream (stream order) from every shard, as if
        older than 24 h. Absolute: trim(5) then trim(3) keeps 5 trimmed. Returns the trim seq."""
        with self._lock:
            if n <= 0:
                return None
            if n > len(self._all):
                raise ValueError(f"only {len(self._all)} records ingested, cannot trim {n}")
            if n > self._trimmed_count:
                self._trimmed_count = n
                self._trim_seq = self._all[n - 1][0]
            return self._trim_seq

    def split_now(self):
        """Force one split (or rotation) now. Returns (closed shard id, [child ids])."""
        with self._lock:
            if not self._shards:
                raise RuntimeError("no stream attached yet")
            return self._split_locked()

    def shards(self):
        """[{id, parent, closed, start, end, n_records, hash_range, hidden}] in creation order."""
        with self._lock:
            return [dict(id=s.id, parent=s.parent, closed=s.closed, start=s.start, end=s.end,
                         n_records=len(s.records), hash_range=(s.lo, s.hi),
                         hidden=self._hidden_locked(s))
                    for s in self._shards]

    def shard_records(self, shard_id):
        """The records (dicts) of one virtual shard, trimmed ones included."""
        with self._lock:
            return list(self._by_id[shard_id].records)

    def records(self):
        """Every ingested record in upstream order."""
        with self._lock:
            out = []
            idx = {s.id: 0 for s in self._shards}
            for _, sid in self._all:
                out.append(self._by_id[sid].records[idx[sid]])
                idx[sid] += 1
            return out

    def shard_for_key(self, value):
        """Id of the open shard that receives records of hash-key value `value` now."""
        h = self._hash(value)
        with self._lock:
            for s in self._shards:
                if not s.closed and s.lo <= h < s.hi:
                    return s.id
        return None

    def read_log(self):
        """[(monotonic time, shard id, n records returned, closed_end_reached)] per GetRecords."""
        return self._read_log.snapshot()

    def wait_records(self, n, timeout=10.0):
        """Block until at least n records are ingested. Returns the count (< n on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._all) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    break
                self._cond.wait(min(left, 0.2))
            return len(self._all)

    @property
    def ingested(self):
        with self._lock:
            return len(self._all)

    # -- hashing, ids, splits -------------------------------------------------------

    @staticmethod
    def _hash(value):
        return zlib.crc32(str(value).encode()) & 0xFFFFFFFF

    def _key_value(self, record):
        keys = (record.get("dynamodb") or {}).get("Keys") or {}
        attr = keys.get(self._hash_key) if self._hash_key else None
        if attr is None and keys:
            attr = keys[sorted(keys)[0]]
        if not isinstance(attr, dict) or not attr:
            return ""
        v = attr[sorted(attr)[0]]          # {"S": "k1"} -> "k1"; {"N": "7"} -> "7"
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True)

    def _new_shard_id(self):
        # 20 digits that grow with creation (so ids sort in creation order) + 8 hex.
        self._id_clock = max(self._id_clock + 1, int(time.time() * 1000))
        tail = zlib.crc32(f"{self._token}-{self._id_clock}".encode()) & 0xFFFFFFFF
        return f"shardId-{self._id_clock:020d}-{tail:08x}"

    def _add_shard(self, parent, lo, hi, start):
        s = _Shard(self._new_shard_id(), parent, lo, hi, start)
        self._shards.append(s)
        self._by_id[s.id] = s
        return s

    def _fmt_seq(self, n):
        return str(n).zfill(self._seq_width)

    def _split_locked(self):
        open_ = [s for s in self._shards if not s.closed]
        victim = min(open_, key=lambda s: (-len(s.records), s.id))   # most records; tie: lowest id
        n_open = len(open_)
        victim.end = victim.records[-1]["dynamodb"]["SequenceNumber"] if victim.records else victim.start
        # children start after the last seq seen (nothing seen yet: at the stream's start)
        start = self._fmt_seq(self._last_seq + 1) if self._last_seq is not None else victim.start
        if n_open < self.max_open and victim.hi - victim.lo >= 2:
            mid = (victim.lo + victim.hi) // 2
            kids = [self._add_shard(victim.id, victim.lo, mid, start),
                    self._add_shard(victim.id, mid, victim.hi, start)]
        else:
            kids = [self._add_shard(victim.id, victim.lo, victim.hi, start)]
        return victim.id, [k.id for k in kids]

    def _append_locked(self, record):
        seq_s = record["dynamodb"]["SequenceNumber"]
        seq = int(seq_s)
        self._seq_width = max(self._seq_width, len(seq_s))
        h = self._hash(self._key_value(record))
        target = None
        for s in self._shards:
            if not s.closed and s.lo <= h < s.hi:
                target = s
                break
        if target is None:            # cannot happen: open shards always cover the space
            target = [s for s in self._shards if not s.closed][0]
        target.records.append(record)
        target.seqs.append(seq)
        self._all.append((seq, target.id))
        self._last_seq = seq
        if self.split_every and len(self._all) % self.split_every == 0:
            self._split_locked()

    def _hidden_locked(self, s):
        if not self.hide_trimmed_shards or not s.closed or self._trim_seq is None:
            return False
        return int(s.end) <= self._trim_seq and (not s.seqs or s.seqs[-1] <= self._trim_seq)

    def _first_live_locked(self, s):
        if self._trim_seq is None:
            return 0
        return bisect.bisect_right(s.seqs, self._trim_seq)

    # -- upstream I/O -------------------------------------------------------------------

    def _pooled(self):
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._upstream.connect()

    def _put_pooled(self, conn):
        with self._lock:
            if len(self._pool) < 8 and not self._stopping.is_set():
                self._pool.append(conn)
                return
        conn.close()

    def _exchange(self, method, path, headers, body):
        """Sends one request upstream on a pooled kept-alive connection.
        Returns (status, reason, headers, payload)."""
        conn = self._pooled()
        answer = self._upstream.exchange(conn, method, path, headers, body)
        self._put_pooled(conn)
        return answer

    def _auth_headers(self):
        auth, date = self._auth or (_DEFAULT_AUTH, "20200101T000000Z")
        return [("Authorization", auth), ("X-Amz-Date", date)]

    def _call(self, target, body, conn=None):
        """JSON call upstream with copied/dummy auth. Returns the parsed body or raises
        _UpstreamError. With conn, uses that dedicated connection (the ingest thread)."""
        data = json.dumps(body).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"),
                   ("X-Amz-Target", target)] + self._auth_headers()
        if conn is None:
            status, _, _, payload = self._exchange("POST", "/", headers, data)
        else:
            status, _, _, payload = self._upstream.exchange(conn, "POST", "/", headers, data)
        if status != 200:
            raise _UpstreamError(status, payload)
        return json.loads(payload or b"{}")

    def _describe_upstream(self, arn, conn=None):
        """All of upstream's DescribeStream pages merged: (description, shards)."""
        shards, start = [], None
        while True:
            body = {"StreamArn": arn}
            if start:
                body["ExclusiveStartShardId"] = start
            d = self._call(STREAMS_PREFIX + "DescribeStream", body, conn)["StreamDescription"]
            shards += d.get("Shards", [])
            start = d.get("LastEvaluatedShardId")
            if not start:
                return d, shards

    # -- attaching ----------------------------------------------------------------------------

    def _wants(self, arn):
        if not arn or ":table/" not in arn:
            return False
        if self.table is None:
            return True
        return arn.split(":table/", 1)[1].split("/stream/", 1)[0] == self.table

    def _attach(self, arn, raise_errors=False, timeout=10.0):
        with self._attach_lock:
            with self._lock:
                if self.stream_arn is not None:
                    return self.stream_arn == arn
            try:
                desc, up_shards = self._describe_upstream(arn)
            except (_UpstreamError, OSError, ValueError, KeyError):
                if raise_errors:
                    raise
                return False
            meta = {k: desc[k] for k in ("StreamArn", "StreamLabel", "StreamStatus", "StreamViewType",
                                         "CreationRequestDateTime", "TableName", "KeySchema")
                    if k in desc}
            hash_key = next((k["AttributeName"] for k in desc.get("KeySchema", [])
                             if k.get("KeyType") == "HASH"), None)
            roots_start = None
            for s in up_shards:
                st = s.get("SequenceNumberRange", {}).get("StartingSequenceNumber")
                if st is not None and (roots_start is None or int(st) < int(roots_start)):
                    roots_start = st
            roots_start = roots_start or "0" * 21
            with self._lock:
                self.stream_arn = arn
                self._meta = meta
                self._hash_key = hash_key
                self._seq_width = max(len(roots_start), 1)
                for i in range(self.n_shards):
                    lo = i * HASH_SPACE // self.n_shards
                    hi = (i + 1) * HASH_SPACE // self.n_shards
                    self._add_shard(None, lo, hi, roots_start)
                self._ingest_thread = threading.Thread(target=self._ingest_loop, args=(arn,),
                                                       name=f"topologyproxy-{self.port}-ingest",
                                                       daemon=True)
                self._ingest_thread.start()
            return True

    # -- ingest -----------------------------------------------------------------------------

    def _ingest_loop(self, arn):
        conn = None
        up_shard = None       # upstream shard being read
        done = set()          # upstream shards read to their end
        it = None
        last_seq = None       # last upstream seq ingested (string)
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self._upstream.connect()
                if it is None:
                    if up_shard is None:
                        _, shards = self._describe_upstream(arn, conn)
                        ids = {s["ShardId"] for s in shards}
                        cands = [s for s in shards if s["ShardId"] not in done and
                                 (s.get("ParentShardId") is None or s.get("ParentShardId") in done
                                  or s.get("ParentShardId") not in ids)]
                        if not cands:
                            self._stopping.wait(self.poll_interval * 5)
                            continue
                        up_shard = cands[0]["ShardId"]
                    req = {"StreamArn": arn, "ShardId": up_shard}
                    if last_seq is None:
                        req["ShardIteratorType"] = "TRIM_HORIZON"
                    else:
                        req["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                        req["SequenceNumber"] = last_seq
                    it = self._call(STREAMS_PREFIX + "GetShardIterator", req, conn)["ShardIterator"]
                resp = self._call(STREAMS_PREFIX + "GetRecords",
                                  {"ShardIterator": it, "Limit": GET_RECORDS_MAX}, conn)
                recs = resp.get("Records", [])
                if recs:
                    with self._cond:
                        for r in recs:
                            self._append_locked(r)
                        self._cond.notify_all()
                    last_seq = recs[-1]["dynamodb"]["SequenceNumber"]
                it = resp.get("NextShardIterator")
                if it is None:                 # upstream shard closed and read to its end
                    done.add(up_shard)
                    up_shard = None
                backoff = 0.05
                if not recs:
                    self._stopping.wait(self.poll_interval)
            except _UpstreamError as e:
                if e.etype == "ExpiredIteratorException":
                    it = None
                    continue
                if e.etype == "TrimmedDataAccessException":
                    it, last_seq = None, None
                self._note_error(str(e))
                it = None
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                if conn is not None:
                    conn.close()
                conn = None
                it = None
                if self._stopping.is_set():
                    break
                self._note_error(f"{type(e).__name__}: {e}")
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 1.0)
        if conn is not None:
            conn.close()

    def _note_error(self, msg):
        with self._lock:
            self.errors.append(msg)
            del self.errors[:-100]

    # -- iterators ----------------------------------------------------------------------------

    def _make_iterator_locked(self, shard, index):
        self._iter_serial += 1
        payload = json.dumps({"p": self._token, "s": shard.id, "i": index, "n": self._iter_serial,
                              "t": time.monotonic(), "r": os.urandom(24).hex()},
                             separators=(",", ":")).encode()
        return f"{self.stream_arn}|1|{base64.b64encode(payload).decode()}"

    def _parse_iterator(self, it):
        """(shard id, index, serial, issued) or None when it was not issued by this proxy."""
        if not isinstance(it, str) or "|1|" not in it:
            return None
        try:
            d = json.loads(base64.b64decode(it.rpartition("|")[2], validate=True))
        except (ValueError, TypeError):
            return None
        if not isinstance(d, dict) or d.get("p") != self._token:
            return None
        return d["s"], int(d["i"]), int(d["n"]), float(d["t"])

    # -- serving ---------------------------------------------------------------------------------

    def _send(self, h, status, reason, headers, payload):
        h.send_response_only(status, reason)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)
        h.wfile.flush()

    def _send_json(self, h, status, payload):
        reason = http.client.responses.get(status, "Error")
        self._send(h, status, reason,
                   [("Server", self._server_header),
                    ("Date", email.utils.formatdate(usegmt=True)),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amz-crc32", str(zlib.crc32(payload) & 0xFFFFFFFF))],
                   payload)

    def _handle(self, h):
        try:
            body = read_body(h.rfile, h.headers)
        except (OSError, ValueError):
            h.close_connection = True
            return
        target = h.headers.get("X-Amz-Target", "") or ""
        if self._auth is None and (h.headers.get("Authorization") or "").startswith("AWS4-"):
            self._auth = (h.headers.get("Authorization"), h.headers.get("X-Amz-Date") or "20200101T000000Z")
        if target.startswith(STREAMS_PREFIX) and h.command == "POST":
            op = target[len(STREAMS_PREFIX):]
            if op in ("DescribeStream", "GetShardIterator", "GetRecords"):
                try:
                    req = json.loads(body or b"{}")
                except ValueError:
                    req = None
                if isinstance(req, dict) and self._is_ours(op, req):
                    try:
                        out = getattr(self, "_op_" + op)(req)
                        status, payload = 200, json.dumps(out, separators=(",", ":")).encode()
                    except _ApiError as e:
                        status, payload = e.status, e.payload()
                    except _UpstreamError as e:
                        status, payload = e.status, e.body
                    except (OSError, http.client.HTTPException) as e:
                        status = 500
                        payload = _ApiError(500, "InternalServerError", f"upstream: {e}").payload()
                    except Exception as e:          # a proxy bug: answer like AWS would, log it
                        self._note_error(f"{op}: {type(e).__name__}: {e}")
                        status = 500
                        payload = _ApiError(500, "InternalServerError", "internal error").payload()
                    self._send_json(h, status, payload)
                    return
        self._passthrough(h, target, body)

    def _is_ours(self, op, req):
        if op == "GetRecords":
            return self._parse_iterator(req.get("ShardIterator")) is not None
        arn = req.get("StreamArn")
        with self._lock:
            cur = self.stream_arn
        if cur is None and self._wants(arn):
            self._attach(arn)
            with self._lock:
                cur = self.stream_arn
        return cur is not None and arn == cur

    def _passthrough(self, h, target, body):
        try:
            status, reason, headers, payload = self._exchange(h.command, h.path,
                                                              list(h.headers.items()), body)
        except (OSError, http.client.HTTPException) as e:
            payload = _ApiError(500, "InternalServerError", f"proxy: upstream unreachable: {e}").payload()
            h.close_connection = True
            self._send_json(h, 502, payload)
            return
        for k, v in headers:
            if k.lower() == "server":
                self._server_header = v
        if (status == 200 and self.stream_arn is None and
                target in (DYNAMODB_PREFIX + "DescribeTable", DYNAMODB_PREFIX + "CreateTable",
                           DYNAMODB_PREFIX + "UpdateTable")):
            try:
                d = json.loads(payload)
                arn = (d.get("Table") or d.get("TableDescription") or {}).get("LatestStreamArn")
            except (ValueError, AttributeError):
                arn = None
            if arn and self._wants(arn):
                self._attach(arn)
        self._send(h, status, reason, headers, payload)

    # -- the Streams operations -------------------------------------------------------------------------

    def _op_DescribeStream(self, req):
        limit = req.get("Limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1 or limit > 100):
            raise _validation(f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                              "constraint: Member must have value less than or equal to 100 and greater "
                              "than or equal to 1")
        limit = min(limit or self.page_size, self.page_size)
        # fresh non-shard fields from upstream (its errors, e.g. a deleted table, pass through)
        desc = self._call(STREAMS_PREFIX + "DescribeStream", {"StreamArn": req["StreamArn"], "Limit": 1})
        up = desc["StreamDescription"]
        start = req.get("ExclusiveStartShardId")
        filt = req.get("ShardFilter")
        with self._lock:
            shards = [s for s in self._shards if not self._hidden_locked(s)]
            if isinstance(filt, dict) and filt.get("Type") == "CHILD_SHARDS":
                shards = [s for s in shards if s.parent == filt.get("ShardId")]
            if start:
                shards = [s for s in shards if s.id > start]
            page = shards[:limit]
            more = len(shards) > limit
            out_shards = []
            for s in page:
                d = {"ShardId": s.id}
                rng = {"StartingSequenceNumber": s.start}
                if s.closed:
                    rng["EndingSequenceNumber"] = s.end
                d["SequenceNumberRange"] = rng
                if s.parent is not None:
                    d["ParentShardId"] = s.parent
                out_shards.append(d)
        sd = {}
        for k in ("StreamArn", "StreamLabel", "StreamStatus", "StreamViewType",
                  "CreationRequestDateTime", "TableName", "KeySchema"):
            if k in up:
                sd[k] = up[k]
            elif self._meta and k in self._meta:
                sd[k] = self._meta[k]
        sd["Shards"] = out_shards
        if more and page:
            sd["LastEvaluatedShardId"] = page[-1].id
        return {"StreamDescription": sd}

    def _op_GetShardIterator(self, req):
        sid = req.get("ShardId")
        typ = req.get("ShardIteratorType")
        if typ not in ITERATOR_TYPES:
            raise _validation(f"1 validation error detected: Value '{typ}' at 'shardIteratorType' failed "
                              f"to satisfy constraint: Member must satisfy enum value set: "
                              f"[{', '.join(ITERATOR_TYPES)}]")
        with self._lock:
            s = self._by_id.get(sid)
            if s is None or self._hidden_locked(s):
                raise _ApiError(400, "ResourceNotFoundException",
                                "Requested resource not found: Shard does not exist")
            first = self._first_live_locked(s)
            if typ == "TRIM_HORIZON":
                idx = first
            elif typ == "LATEST":
                idx = len(s.records)
            else:
                seq_s = req.get("SequenceNumber")
                if seq_s is None:
                    raise _validation(f"SequenceNumber must be provided for ShardIteratorType {typ}")
                try:
                    seq = int(seq_s)
                except (TypeError, ValueError):
                    raise _validation(f"Invalid SequenceNumber: {seq_s}")
                if seq < int(s.start) or (s.closed and seq > int(s.end)):
                    raise _validation(f"Invalid SequenceNumber {seq_s} for shard {sid}: outside the "
                                      f"shard's SequenceNumberRange")
                if typ == "AT_SEQUENCE_NUMBER":
                    idx = bisect.bisect_left(s.seqs, seq)
                else:
                    idx = bisect.bisect_right(s.seqs, seq)
                if idx < first:
                    raise _ApiError(400, "TrimmedDataAccessException",
                                    "The requested sequence number is beyond the trim horizon of the "
                                    "stream (older than 24 hours)")
            return {"ShardIterator": self._make_iterator_locked(s, idx)}

    def _op_GetRecords(self, req):
        limit = req.get("Limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1 or limit > GET_RECORDS_MAX):
            raise _validation(f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                              f"constraint: Member must have value less than or equal to {GET_RECORDS_MAX} "
                              "and greater than or equal to 1")
        limit = limit or GET_RECORDS_MAX
        sid, idx, serial, issued = self._parse_iterator(req.get("ShardIterator"))
        now = time.monotonic()
        with self._lock:
            if serial <= self._expired_upto or now - issued > self.iterator_ttl:
                raise _ApiError(400, "ExpiredIteratorException",
                                f"Iterator expired. The iterator was created {now - issued:.0f} s ago, more "
                                f"than the tolerated {self.iterator_ttl * 1000:.0f} milliseconds.")
            s = self._by_id.get(sid)
            if s is None:
                raise _ApiError(400, "ResourceNotFoundException",
                                "Requested resource not found: Shard does not exist")
            if idx < self._first_live_locked(s):
                raise _ApiError(400, "TrimmedDataAccessException",
                                "The operation attempted to read past the oldest stream record in a "
                                "shard (the data was trimmed)")
            out, size = [], 0
            j = idx
            while j < len(s.records) and len(out) < limit:
                r = s.records[j]
                rsize = len(json.dumps(r))
                if out and size + rsize > GET_RECORDS_MAX_BYTES:
                    break
                out.append(r)
                size += rsize
                j += 1
            end_reached = s.closed and j >= len(s.records)
            self._read_log.add(lambda _: (now, sid, len(out), end_reached))
            resp = {"Records": out}
            if not end_reached:
                resp["NextShardIterator"] = self._make_iterator_locked(s, j)
            return resp

    def __repr__(self):
        return (f"<TopologyProxy {self.endpoint} -> {self._upstream.host}:{self._upstream.port} "
                f"stream={self.stream_arn}>")
