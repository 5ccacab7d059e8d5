#!/bin/sh
# Install the Debian packages funnel needs to build and test, if missing.
#
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also what `make bench` compares against
#   scripts/install-deps.sh --dev    also what CI's format check uses (clang-format) and
#                                    what the pyreader and torchref suites run (numpy,
#                                    xxhash, torch)
#   scripts/install-deps.sh --slurm  also what `make test-slurm` starts (slurm-wlm, munge)
#
# libmicrohttpd serves the Prometheus metrics (--metrics_listen); curl
# scrapes them in the tests; gnuplot-nox draws `scripts/plot-metrics.sh`.
#
# clang and its libFuzzer runtime are build + test dependencies: `make test`
# ends with a short run of the fuzz targets (`make fuzz-smoke`).
#
# Checks each package with dpkg-query. As root it installs the missing ones
# with apt-get; otherwise it prints the exact command to run and fails.
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in
-h | --help) help_and_exit "$0" ;;
"" | --bench | --dev | --slurm) ;;
*) echo "install-deps: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

PKGS="build-essential pkg-config zlib1g-dev libzmq3-dev libmsgpack-dev \
librocksdb-dev libopenblas-dev libdnnl-dev libcunit1-dev libinih-dev libxxhash-dev \
clang libclang-rt-14-dev libmicrohttpd-dev curl gnuplot-nox"
# the deploy suite checks deploy/k8s with deploy/check-manifests.py (cluster)
PKGS="$PKGS python3 python3-yaml"
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS python3 python3-numpy python3-torch"
fi
if [ "${1:-}" = "--slurm" ]; then
    PKGS="$PKGS slurm-wlm munge iproute2"
fi
if [ "${1:-}" = "--dev" ]; then
    PKGS="$PKGS clang-format"
    PKGS="$PKGS python3-numpy python3-xxhash" # the Python reader's test (python/funnel_reader.py)
    PKGS="$PKGS python3-torch" # the torchref suite: gradients against bench/torch_model.py
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: missing packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run this, then retry:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh container has no package lists yet; refresh them only when needed.
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
