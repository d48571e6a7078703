"""Temporary AWS credentials handed out by the tests' fake credential
sources (STS, the container endpoint, instance metadata), kept in one
ledger so that a server standing in for AWS (the SigV4 proxy in front of
DynamoDB Local) accepts exactly what was handed out, and only until it
expires."""

import datetime
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Issued:
    access_key_id: str
    secret_access_key: str
    session_token: Optional[str]
    expires_at: Optional[float]  # Unix seconds; None: long-term keys

    def expired(self, now=None):
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def expiration_iso(self):
        """The expiry as AWS writes it: 2026-12-07T22:39:20Z."""
        t = datetime.datetime.fromtimestamp(self.expires_at, datetime.timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialLedger:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_key_id = {}
        self._issued = []

    def issue(self, lifetime=3600.0, prefix="ASIA"):
        """New temporary credentials valid for `lifetime` seconds."""
        creds = Issued(
            access_key_id=prefix + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(48),
            expires_at=time.time() + lifetime,
        )
        return self._keep(creds)

    def add_static(self, access_key_id, secret_access_key, session_token=None):
        """Long-term keys (or a fixed session token) that never expire."""
        return self._keep(Issued(access_key_id, secret_access_key, session_token, None))

    def _keep(self, creds):
        with self._lock:
            self._by_key_id[creds.access_key_id] = creds
            self._issued.append(creds)
        return creds

    def lookup(self, access_key_id):
        with self._lock:
            return self._by_key_id.get(access_key_id)

    @property
    def issued(self):
        with self._lock:
            return list(self._issued)
