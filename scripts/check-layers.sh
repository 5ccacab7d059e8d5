#!/bin/sh
# Check every #include "..." of funnel's sources against the layer matrix.
#
#   scripts/check-layers.sh [--root DIR] "FOLDER: USED..." ...
#   (make check-layers passes the matrix written in the Makefile, USES_*)
#
# A file in FOLDER may include headers of FOLDER itself and of the USED
# folders. Every include names its folder ("common/err.h"); tests/ and
# bench/ may include any folder (tests/main.c also the generated suites.h).
# Prints one line per offending include (file:line: what, and which
# folders it may use) and exits 1; exits 0 when every include is allowed.
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac

ROOT=.
if [ "${1:-}" = "--root" ]; then
    ROOT=$2
    shift 2
fi
[ $# -gt 0 ] || { echo "check-layers: no matrix given (see --help)" >&2; exit 2; }

matrix=$(printf '%s\n' "$@")
folders=$(printf '%s\n' "$@" | sed 's/:.*//')

bad=0
check_folder() { # folder, allowed folders (space separated; "*" = any)
    dir=$1
    allowed=" $1 $2 "
    for f in "$ROOT/$dir"/*.c "$ROOT/$dir"/*.h; do
        [ -f "$f" ] || continue
        rel=${f#"$ROOT"/}
        # lines: NUMBER:HEADER for every #include "HEADER"
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/' >"$tmp" || true
        while IFS=: read -r line hdr; do
            case "$hdr" in
            */*) used=${hdr%%/*} ;;
            *)
                if [ "$rel" = tests/main.c ] && [ "$hdr" = suites.h ]; then
                    continue
                fi
                echo "$rel:$line: #include \"$hdr\" names no folder (write \"FOLDER/$hdr\")"
                bad=1
                continue
                ;;
            esac
            if [ "$2" = "*" ]; then
                if ! printf '%s\n' $folders tests | grep -qx "$used"; then
                    echo "$rel:$line: #include \"$hdr\": no folder '$used' in the layer matrix"
                    bad=1
                fi
                continue
            fi
            case "$allowed" in
            *" $used "*) ;;
            *)
                echo "$rel:$line: #include \"$hdr\": $dir/ may not use $used/ (it may use: ${2:-nothing else})"
                bad=1
                ;;
            esac
        done <"$tmp"
    done
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$matrix" | {
    while IFS= read -r row; do
        dir=${row%%:*}
        uses=$(echo "${row#*:}" | sed 's/^ *//; s/ *$//')
        check_folder "$dir" "$uses"
    done
    check_folder tests "*"
    check_folder bench "*"
    if [ $bad -ne 0 ]; then
        echo "check-layers: includes outside the layer matrix (USES_* in the Makefile)" >&2
        exit 1
    fi
}
