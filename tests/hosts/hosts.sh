#!/bin/sh
# hosts.sh - "hosts" as network namespaces on one bridge, for the tests and
# benchmarks that run funnel across hosts on one machine (root only).
#
#   hosts.sh up ID N [RATE]     make N hosts: namespaces fh-ID-h0..h<N-1>,
#                               each with eth0 = 10.213.0.<i+1>/24, joined by
#                               a bridge in the switch namespace fh-ID-sw;
#                               RATE (e.g. 1gbit) caps each host's link both
#                               ways with a tc tbf qdisc
#   hosts.sh add ID I [RATE]    (re)make host I alone (after `kill`): same
#                               address and MAC, as a rebooted machine (a new
#                               MAC would leave peers' ARP caches pointing
#                               at the dead one, and their TCP resends
#                               unanswered for minutes instead of reset)
#   hosts.sh exec ID I CMD...   run CMD on host I (exec: keeps the pid)
#   hosts.sh cut ID I           take host I's link down (its processes live on)
#   hosts.sh heal ID I          bring it up again
#   hosts.sh kill ID I          host I dies: every process in it is killed
#                               (SIGKILL) and its namespace removed
#   hosts.sh addr I             host I's address
#   hosts.sh down ID            kill every process of every host of run ID and
#                               remove every namespace, link and bridge
#   hosts.sh with ID N RATE CMD...  up, run CMD (with FH_ID set), down (also
#                               when CMD fails or the script is interrupted)
#
# ID must be unique per run (the tests use their pid) so parallel runs never
# meet: each run has its own switch namespace, so the 10.213.0.0/24 addresses
# exist only inside that run's namespaces and nothing touches the root
# namespace's interfaces or routes. Needs iproute2 (ip, tc) and root.
set -u

die() { echo "hosts.sh: $*" >&2; exit 1; }
sw() { echo "fh-$1-sw"; }
host() { echo "fh-$1-h$2"; }
addr() { echo "10.213.0.$(($1 + 1))"; }

need() {
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces): run as root, e.g. sudo make test-hosts"
    command -v ip > /dev/null || die "'ip' (iproute2) not found: apt-get install iproute2"
}

check_id() {
    case "$1" in '' | *[!A-Za-z0-9]*) die "ID '$1': expected letters and digits (e.g. the caller's pid)" ;; esac
    [ ${#1} -le 8 ] || die "ID '$1': at most 8 characters"
}

# host_make ID I RATE: namespace, veth pair to the switch, address, cap
host_make() {
    h=$(host "$1" "$2")
    ip netns add "$h" || return 1
    ip -n "$h" link set lo up &&
        ip -n "$h" link add eth0 type veth peer name "p$2" netns "$(sw "$1")" &&
        ip -n "$h" link set eth0 address "$(printf '02:13:00:00:%02x:%02x' $(($2 / 256)) $(($2 % 256)))" &&
        ip -n "$h" addr add "$(addr "$2")/24" dev eth0 &&
        ip -n "$h" link set eth0 up &&
        ip -n "$(sw "$1")" link set "p$2" master br0 &&
        ip -n "$(sw "$1")" link set "p$2" up || return 1
    if [ -n "${3:-}" ]; then
        command -v tc > /dev/null || die "'tc' not found: apt-get install iproute2"
        ip netns exec "$h" tc qdisc add dev eth0 root tbf rate "$3" burst 256kb latency 50ms &&
            ip netns exec "$(sw "$1")" tc qdisc add dev "p$2" root tbf rate "$3" burst 256kb latency 50ms ||
            return 1
    fi
}

ns_kill() { # kill every process in namespace $1 (bounded), then remove it
    ip netns list 2> /dev/null | grep -q "^$1\( \|$\)" || return 0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$(ip netns pids "$1" 2> /dev/null)
        [ -z "$p" ] && break
        kill -9 $p 2> /dev/null
        sleep 0.1
    done
    ip netns del "$1" 2> /dev/null
}

down() {
    for n in $(ip netns list 2> /dev/null | awk '{print $1}' | grep "^fh-$1-h[0-9]*$"); do
        ns_kill "$n"
    done
    ns_kill "$(sw "$1")"
}

up() {
    trap 'down "$1"' INT TERM
    if ! { ip netns add "$(sw "$1")" &&
        ip -n "$(sw "$1")" link add br0 type bridge &&
        ip -n "$(sw "$1")" link set br0 up; }; then
        down "$1"
        die "could not make the switch namespace $(sw "$1") (is 'ip netns' available?)"
    fi
    i=0
    while [ "$i" -lt "$2" ]; do
        if ! host_make "$1" "$i" "${3:-}"; then
            down "$1"
            die "could not make host $i of run $1"
        fi
        i=$((i + 1))
    done
    trap - INT TERM
}

cmd=${1:-}
case "$cmd" in
-h | --help | '') sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
addr) addr "$2"; exit 0 ;;
esac
need
[ $# -ge 2 ] || die "$cmd: expected ID (see --help)"
id=$2
check_id "$id"
case "$cmd" in
up) [ $# -ge 3 ] || die "up: expected ID N [RATE]"; up "$id" "$3" "${4:-}" ;;
add) [ $# -ge 3 ] || die "add: expected ID I [RATE]"; ns_kill "$(host "$id" "$3")"
    host_make "$id" "$3" "${4:-}" || { ns_kill "$(host "$id" "$3")"; die "could not make host $3"; } ;;
exec) [ $# -ge 4 ] || die "exec: expected ID I CMD..."; h=$(host "$id" "$3"); shift 3
    exec ip netns exec "$h" "$@" ;;
cut) ip -n "$(sw "$id")" link set "p$3" down ;;
heal) ip -n "$(sw "$id")" link set "p$3" up ;;
kill) ns_kill "$(host "$id" "$3")" ;;
down) down "$id" ;;
with) [ $# -ge 5 ] || die "with: expected ID N RATE CMD... (RATE '' for none)"
    n=$3 rate=$4; shift 4
    trap 'down "$id"' EXIT
    trap 'exit 130' INT TERM
    up "$id" "$n" "$rate" || exit 1
    FH_ID=$id "$@"
    ;;
*) die "unknown command '$cmd' (see --help)" ;;
esac
