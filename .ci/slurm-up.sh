#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests (CI, or by hand; as root): munge,
# slurmctld and slurmd from Debian's packages, no systemd needed (a container is fine).
#
#   .ci/slurm-up.sh          install what is missing, write /run/dpkit-slurm/slurm.conf, start
#                            the daemons with it, wait until the node takes jobs; prints `sinfo`
#   .ci/slurm-up.sh down     stop the daemons this script started (by their pid files)
#
# Clients use the cluster with `export SLURM_CONF=/run/dpkit-slurm/slurm.conf`. Nothing under
# /etc/slurm is written or removed, so a machine's own Slurm configuration stays as it is; when
# a cluster already answers (`sinfo` with the caller's configuration), the script uses it and
# starts nothing.
#
# The node is this host (`hostname -s`) with `nproc` CPUs. Slurm runs as root with
# proctrack/linuxproc and task/none, so it needs no cgroups (containers often have none
# writable); select/cons_tres lets several 1-CPU tasks share the node.
set -euo pipefail
RUN=/run/dpkit-slurm
CONF=$RUN/slurm.conf

if [ "${1:-}" = down ]; then
  for d in slurmd slurmctld munged; do
    if [ -f "$RUN/$d.pid" ]; then kill "$(cat "$RUN/$d.pid")" 2>/dev/null || true; rm -f "$RUN/$d.pid"; fi
  done
  echo "slurm-up: daemons stopped"
  exit 0
fi

if command -v sinfo >/dev/null && timeout 20 sinfo -h >/dev/null 2>&1; then
  echo "slurm-up: a cluster already answers (SLURM_CONF=${SLURM_CONF:-default}); using it, starting nothing"
  timeout 20 sinfo
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "slurm-up: run as root (the daemons run as root here)" >&2; exit 1; }
missing=""
for p in munge slurmctld slurmd slurm-client; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "slurm-up: installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

mkdir -p "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

# munge: a key (generated once), the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$RUN/munged.pid" 2>/dev/null || true
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n </dev/null | unmunge >/dev/null || { echo "slurm-up: munge does not work" >&2; exit 1; }

cat > "$CONF" <<CONF
# Written by .ci/slurm-up.sh: one node, root daemons, no cgroups.
ClusterName=dpkit
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
# No cgroup.conf beside it: nothing here uses cgroups.
export SLURM_CONF=$CONF

if ! timeout 20 scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld -f "$CONF" -c   # -c: a fresh state (no jobs of an earlier cluster)
fi
if ! { [ -f "$RUN/slurmd.pid" ] && kill -0 "$(cat "$RUN/slurmd.pid")" 2>/dev/null; }; then
  slurmd -f "$CONF"
fi
for _ in $(seq 60); do
  state=$(timeout 20 sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case "$state" in
    idle*|mix*|alloc*) break ;;
    down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
timeout 20 sinfo
state=$(timeout 20 sinfo -h -n "$host" -o %t)
case "$state" in
  idle*|mix*|alloc*) echo "slurm-up: node $host ($cpus CPUs) takes jobs (clients: export SLURM_CONF=$CONF)" ;;
  *) echo "slurm-up: node $host is $state; see /var/log/slurm/slurmd.log and slurmctld.log" >&2
     tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2; exit 1 ;;
esac
