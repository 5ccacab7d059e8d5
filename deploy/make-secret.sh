#!/bin/sh
# Make the CURVE keys of a funnel deployment and print them as the
# Kubernetes Secret funnel-keys (deploy/k8s mounts it at /etc/funnel/keys).
#
#   deploy/make-secret.sh --keys DIR [--bin BINDIR] > secret.yaml
#   kubectl apply -f secret.yaml
#
# DIR gets (funnel-ps keygen; existing key files are kept, never replaced):
#   shard.key shard.pub    the shards' key pair (every shard's)
#   worker.key worker.pub  the workers' key pair: allowed as every rank (*),
#                          since an Indexed Job's pods share one Secret
#   admin.key admin.pub    for operators (ctl checkpoint, begin-day,
#                          shutdown); not in the Secret: keep it off the cluster
#   allow                  the shards' allow-list (curve_allow)
# The Secret holds shard.key, shard.pub, worker.key, worker.pub and allow.
set -eu
. "$(dirname "$0")/../scripts/lib.sh"
KEYS="" BIN="$FUNNEL_TOP/bin"
while [ $# -gt 0 ]; do
    case "$1" in
    --keys) KEYS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    -h | --help) help_and_exit "$0" ;;
    *) echo "make-secret: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$KEYS" ] || { echo "make-secret: give --keys DIR (where the key files are made and kept)" >&2; exit 2; }
need_prog make-secret "$BIN" funnel-ps
mkdir -p "$KEYS"
chmod 0700 "$KEYS"
for k in shard worker admin; do
    [ -f "$KEYS/$k.key" ] || "$BIN/funnel-ps" keygen --out "$KEYS/$k" > /dev/null
done
pub() { sed -n 's/^public-key = //p' "$KEYS/$1.pub"; }
{
    echo "worker $(pub worker) workers *"
    echo "admin $(pub admin) admin"
} > "$KEYS/allow"
echo "apiVersion: v1"
echo "kind: Secret"
echo "metadata:"
echo "  name: funnel-keys"
echo "  labels:"
echo "    app.kubernetes.io/name: funnel"
echo "type: Opaque"
echo "data:"
for f in shard.key shard.pub worker.key worker.pub allow; do
    echo "  $f: $(base64 -w0 < "$KEYS/$f")"
done
