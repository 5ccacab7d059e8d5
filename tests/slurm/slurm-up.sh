#!/bin/sh
# Start (or stop) a one-node Slurm cluster on this machine from a scratch
# folder: munged, slurmctld and slurmd, all as root, all listening on
# loopback, nothing written outside DIR. Sourced helper of test-slurm.sh;
# also usable by hand:
#
#   tests/slurm/slurm-up.sh start DIR [CPUS]   then: export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/slurm-up.sh stop DIR
#
# The node claims CPUS (default 8) CPUs whatever the machine has
# (SlurmdParameters=config_overrides), so a job of shards plus workers fits
# on a 2-core machine; processes are tracked by proctrack/linuxproc (no
# cgroups needed). Every daemon's pid is kept in DIR/*.pid for stop.
set -eu

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # seconds, command...
    n=$(($1 * 5)); shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2; n=$((n - 1))
    done
    return 1
}

start() {
    D=$1 CPUS=${2:-8}
    mkdir -p "$D/state" "$D/spool" "$D/munge"
    chmod 0700 "$D/munge"
    mungekey --create --keyfile="$D/munge/munge.key"
    munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
        --pid-file="$D/munged.pid" --log-file="$D/munged.log" --seed-file="$D/munge/seed"
    wait_for 10 munge --socket="$D/munge/munge.sock" -n ||
        { echo "slurm-up: munged did not answer (log: $D/munged.log)" >&2; return 1; }
    HOST=$(hostname -s)
    cat > "$D/slurm.conf" <<EOF
# one-node test cluster made by tests/slurm/slurm-up.sh; removed with $D
ClusterName=funneltest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=funnel Nodes=$HOST Default=YES MaxTime=60 State=UP
EOF
    export SLURM_CONF="$D/slurm.conf"
    slurmctld -i -f "$D/slurm.conf"
    slurmd -f "$D/slurm.conf"
    wait_for 30 sh -c "sinfo -h -N -o %t | grep -q idle" ||
        { echo "slurm-up: the node did not become idle in 30 s (logs: $D/slurm*.log)" >&2
          sinfo -N >&2 || true; return 1; }
}

stop() {
    D=$1
    for p in slurmd slurmctld munged; do
        [ -f "$D/$p.pid" ] || continue
        pid=$(cat "$D/$p.pid")
        kill "$pid" 2>/dev/null || continue
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    done
}

case "${1:-}" in
-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
start) start "$2" "${3:-8}" ;;
stop) stop "$2" ;;
*) echo "usage: $0 start DIR [CPUS] | stop DIR" >&2; exit 2 ;;
esac
