#!/bin/sh
# Fail if clang-format (with the repository's .clang-format) would change
# any of the given files; prints the files and a diff of the first.
#
#   scripts/check-format.sh FILE...   (make check-format passes every source)
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
command -v clang-format >/dev/null || { echo "check-format: clang-format not found (apt-get install clang-format)" >&2; exit 2; }

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bad=""
for f in "$@"; do
    clang-format "$f" >"$tmp"
    if ! cmp -s "$f" "$tmp"; then
        [ -n "$bad" ] || diff -u "$f" "$tmp" | head -40 >&2 || true
        bad="$bad $f"
    fi
done
if [ -n "$bad" ]; then
    echo "check-format: not formatted:$bad" >&2
    echo "check-format: run 'make format'" >&2
    exit 1
fi
