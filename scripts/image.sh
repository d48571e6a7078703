#!/usr/bin/env bash
# make image: the image packaging/Containerfile describes, built without a registry.
#   scripts/image.sh BUILD BINARY VERSION
# The root file system comes from Debian's packages (mmdebstrap, bookworm, the packages of
# packaging/runtime-packages.txt) and is cached in BUILD/image-cache/ under a key of that list
# and of the recipe below, so a second run only adds the binary's layer (remove the cache to
# take the mirror's newer packages, e.g. security updates). Writes the OCI
# layout BUILD/image/oci (tag "outboxd") and the same as an oci-archive, BUILD/image/outboxd.oci.tar
# (`podman load -i` or `podman run oci-archive:...` take it).
set -euo pipefail

build=$1 binary=$2 version=$3
cd "$(dirname "$0")/.."

# --- Must stay equal to packaging/Containerfile (tests/integration/test_image.py compares them):
# the user and its ids, the entrypoint and cmd, the exposed port, the volume and the label keys.
IMAGE_USER=outboxd
IMAGE_UID=10001
IMAGE_ENTRYPOINT=/usr/bin/outboxd
IMAGE_CMD=(run -c /etc/outboxd/outboxd.yaml)
IMAGE_PORT=9464/tcp
IMAGE_VOLUME=/var/lib/outboxd
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IMAGE_LABELS=(
    org.opencontainers.image.title=outboxd
    "org.opencontainers.image.description=Transactional outbox relay for DynamoDB Streams"
    "org.opencontainers.image.version=$version"
    org.opencontainers.image.base.name=debian:12-slim
)
# --- end

packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' packaging/runtime-packages.txt | tr -s ' \n' ',,')
packages=${packages%,}

# What debian:12-slim leaves out (its /etc/dpkg/dpkg.cfg.d/docker: documentation but the
# copyrights, manuals, locales; removed afterwards, which is quicker than dpkg path filters),
# and the user, the config directory and the volume the Containerfile's runtime stage makes.
# usrmerge would bring perl: the merged-usr hook sets /usr up itself and installs
# usr-is-merged instead. Nothing needs dpkg's fsyncs in a tree that becomes a tar.
mmdebstrap_args=(--variant=essential --format=tar --include="$packages"
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --dpkgopt=force-unsafe-io
    --customize-hook='cd "$1/usr/share" && rm -rf man groff info lintian locale &&
        find doc -mindepth 2 ! -name copyright ! -type d -delete && find doc -type d -empty -delete'
    --customize-hook="echo '$IMAGE_USER:x:$IMAGE_UID:' >> \"\$1/etc/group\""
    --customize-hook="echo '$IMAGE_USER:x:$IMAGE_UID:$IMAGE_UID:outboxd:/nonexistent:/usr/sbin/nologin' >> \"\$1/etc/passwd\""
    --customize-hook="install -d \"\$1/etc/outboxd\""
    --customize-hook="install -d -o $IMAGE_UID -g $IMAGE_UID -m 0750 \"\$1$IMAGE_VOLUME\""
    --skip=output/dev
    bookworm)

key=$(printf '%s\n' "${mmdebstrap_args[@]}" | sha256sum | cut -c1-16)
cache=$build/image-cache
rootfs=$cache/rootfs-$key.tar
made="cached root file system"
if [[ ! -f $rootfs ]]; then
    mkdir -p "$cache"
    rm -f "$cache"/rootfs-*.tar
    log=$cache/mmdebstrap.log
    if ! mmdebstrap "${mmdebstrap_args[@]}" "$rootfs.part" >"$log" 2>&1; then
        cat "$log" >&2
        echo "image: mmdebstrap failed (network to the Debian mirror? see above)" >&2
        rm -f "$rootfs.part"
        exit 1
    fi
    mv "$rootfs.part" "$rootfs"
    made="root file system built by mmdebstrap"
fi

# The binary's layer: outboxd and the example config, owned by root, and /dev as an empty
# directory (the root file system leaves out mmdebstrap's device nodes: runtimes mount /dev).
out=$build/image
stage=$out/stage
rm -rf "$out/oci" "$stage"
mkdir -p "$stage/usr/bin" "$stage/usr/share/doc/outboxd" "$stage/dev"
install -m 0755 "$binary" "$stage/usr/bin/outboxd"
install -m 0644 config/outboxd.yaml.example "$stage/usr/share/doc/outboxd/"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -cf "$out/outboxd-layer.tar" usr dev

oci=$out/oci:outboxd
umoci init --layout "$out/oci"
umoci new --image "$oci"
umoci raw add-layer --image "$oci" --history.created_by="mmdebstrap bookworm: packaging/runtime-packages.txt" "$rootfs"
umoci raw add-layer --image "$oci" --history.created_by="outboxd $version" "$out/outboxd-layer.tar"
label_args=()
for l in "${IMAGE_LABELS[@]}"; do label_args+=(--config.label="$l"); done
cmd_args=()
for c in "${IMAGE_CMD[@]}"; do cmd_args+=(--config.cmd="$c"); done
umoci config --image "$oci" --no-history \
    --config.user="$IMAGE_UID:$IMAGE_UID" --config.entrypoint="$IMAGE_ENTRYPOINT" "${cmd_args[@]}" \
    --config.exposedports="$IMAGE_PORT" --config.volume="$IMAGE_VOLUME" --config.workingdir=/ \
    --config.env="PATH=$IMAGE_PATH" "${label_args[@]}"
umoci gc --layout "$out/oci"
tar -C "$out/oci" -cf "$out/outboxd.oci.tar.part" . && mv "$out/outboxd.oci.tar.part" "$out/outboxd.oci.tar"
rm -rf "$stage" "$out/outboxd-layer.tar"
echo "image: $out/oci:outboxd and $out/outboxd.oci.tar (outboxd $version, $made)"
