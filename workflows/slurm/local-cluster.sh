#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's munge, slurmctld, slurmd), all of its state in one directory,
# for tests and for trying the Slurm platform by hand. Needs root (slurmd runs jobs as their users).
#
#   workflows/slurm/local-cluster.sh install       # apt-get the packages (once)
#   workflows/slurm/local-cluster.sh up DIR        # write DIR/slurm.conf, start munged, slurmctld, slurmd; wait idle
#   export SLURM_CONF=DIR/slurm.conf               # then sbatch/squeue/sinfo (and Cylc's slurm job runner) use it
#   workflows/slurm/local-cluster.sh down DIR      # stop the three daemons started by `up DIR`
set -euo pipefail

cmd=${1:?usage: local-cluster.sh install | up DIR | down DIR}

if [[ $cmd == install ]]; then
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurmctld slurmd slurm-client munge
    fi
    exit 0
fi

dir=$(realpath -m "${2:?usage: local-cluster.sh up|down DIR}")

if [[ $cmd == down ]]; then
    for name in slurmd slurmctld munged; do
        pidfile=$dir/$name.pid
        if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pidfile"
    done
    exit 0
fi

[[ $cmd == up ]] || { echo "unknown command $cmd" >&2; exit 2; }
host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir"
# munge with its own key and socket, so nothing under /etc or /run is touched
[[ -f $dir/munge.key ]] || { mungekey --create --keyfile="$dir/munge.key" 2>/dev/null \
    || dd if=/dev/urandom of="$dir/munge.key" bs=1 count=1024 status=none; }
chmod 400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"

node=$(slurmd -C | head -1)   # NodeName=HOST CPUs=.. Boards=.. SocketsPerBoard=.. ... RealMemory=..
cat > "$dir/slurm.conf" <<CONF
ClusterName=wxemu-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=30
${node/NodeName=$host/NodeName=$host} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for _ in $(seq 150); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    [[ $state == idle* || $state == mix* ]] && { echo "slurm up: $host $state (SLURM_CONF=$SLURM_CONF)"; exit 0; }
    sleep 0.2
done
echo "slurm did not come up; logs in $dir/log" >&2
tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
