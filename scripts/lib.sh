# lib.sh - sourced by funnel's scripts (POSIX sh), not run.
#
#   help_and_exit SCRIPT    print SCRIPT's header comment (its usage) and exit 0
#   need_prog NAME BIN PROG exit 2 with a hint unless BIN/PROG is executable
#   FUNNEL_TOP              the checkout the script lives in (absolute), so a
#                           script run from another directory still finds
#                           $FUNNEL_TOP/bin and $FUNNEL_TOP/scripts

FUNNEL_TOP=$(cd "$(dirname "$0")/.." && pwd)

help_and_exit() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
    exit 0
}

need_prog() {
    [ -x "$2/$3" ] && return 0
    echo "$1: $2/$3 not found: run make first, or give the directory of funnel's programs (see --help)" >&2
    exit 2
}
