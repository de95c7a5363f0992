#!/usr/bin/env bash
# slurm-up.sh: a real two-node Slurm cluster on this one machine, for tsflow's tests.
#
#   root namespace : munged, slurmctld (listening on the bridge address ${SUBNET}.1)
#   host i (netns) : ${PREFIX}i, eth0 = ${SUBNET}.$((10+i)), its own slurmd (NodeName ${PREFIX}i,
#                    NodeAddr = that address) in its own UTS namespace (hostname ${PREFIX}i)
#
# The munge socket is a file, so the daemons in the namespaces share the root's munged. No
# systemd, no cgroups (proctrack/linuxproc, task/none) and no accounting daemon (so sacct does
# not work: tsflow's Slurm provider falls back to `scontrol show job`).
#
# Idempotent and safe to run concurrently (flock): a second caller waits, finds everything up
# and returns at once. Prints, as its last line, one JSON object describing the cluster:
#   {"partition":"debug","downPartition":"debugdown","controllerAddress":"10.201.0.1",
#    "nodes":[{"name":"tsfslurm1","address":"10.201.0.11"},...]}
# Exit status non-zero (with the reason on stderr) when the cluster could not be brought up.
#
# Env knobs: TSF_SLURM_PREFIX (tsfslurm), TSF_SLURM_SUBNET (10.201.0), TSF_SLURM_NODES (2),
#   TSF_SLURM_PARTITION (debug), TSF_SLURM_CPUS (cpus advertised per node, default 8),
#   TSF_SLURM_MIN_JOB_AGE (300), TSF_SLURM_WAIT_SECS (60).
set -euo pipefail

PREFIX=${TSF_SLURM_PREFIX:-tsfslurm}
SUBNET=${TSF_SLURM_SUBNET:-10.201.0}
COUNT=${TSF_SLURM_NODES:-2}
PARTITION=${TSF_SLURM_PARTITION:-debug}
CPUS=${TSF_SLURM_CPUS:-8}
MIN_JOB_AGE=${TSF_SLURM_MIN_JOB_AGE:-300}
WAIT_SECS=${TSF_SLURM_WAIT_SECS:-60}
BRIDGE=br-${PREFIX:0:12}
CONTROLLER=${SUBNET}.1
CTL_HOST=$(hostname -s)
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_BASE=/var/lib/slurm/slurmd
CONF=/etc/slurm/slurm.conf
LOCK=/run/lock/tsflow-slurm-up.lock

log() { printf '[slurm-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[slurm-up] error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces and the Slurm daemons)"
for cmd in slurmctld slurmd sbatch munged ip unshare flock; do
  command -v "$cmd" >/dev/null || die "missing command $cmd (apt-get install slurmctld slurmd slurm-client munge iproute2 util-linux)"
done

mkdir -p "$(dirname "$LOCK")"
# fd 9 holds the lock; every daemon started below closes it (9>&-), or it would hold it forever
exec 9>"$LOCK"
flock -w 300 9 || die "could not take $LOCK within 300 s (another slurm-up.sh stuck?)"

nodes=()
for i in $(seq 1 "$COUNT"); do nodes+=("${PREFIX}${i}"); done
addr_of() { echo "${SUBNET}.$((10 + ${1#"$PREFIX"}))"; }

# alive PIDFILE NAME: the pid file names a live (non-zombie) process called NAME
# (PID 1 here may not reap promptly, so kill -0 alone is fooled by zombies).
alive() {
  local pid st
  [[ -s $1 ]] || return 1
  pid=$(cat "$1")
  [[ -r /proc/$pid/stat && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] || return 1
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  [[ -n $st && $st != Z && $st != X ]]
}
stop_daemon() { # pidfile name
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$1" "$2" || break; sleep 0.1; done
  alive "$1" "$2" && kill -KILL "$pid" 2>/dev/null
  rm -f "$1"
}

# ---- 1. the hosts: network namespaces on a bridge ---------------------------------------
ip link show "$BRIDGE" >/dev/null 2>&1 || { ip link add "$BRIDGE" type bridge; log "created bridge $BRIDGE"; }
ip addr replace "${CONTROLLER}/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
hosts_file="127.0.0.1 localhost
${CONTROLLER} ${CTL_HOST}"
for n in "${nodes[@]}"; do hosts_file+=$'\n'"$(addr_of "$n") $n"; done
for n in "${nodes[@]}"; do
  addr=$(addr_of "$n"); i=${n#"$PREFIX"}
  outside=v${PREFIX:0:8}${i}r; inside=v${PREFIX:0:8}${i}h
  ip netns list | awk '{print $1}' | grep -qx "$n" || { ip netns add "$n"; log "created netns $n"; }
  if ! ip link show "$outside" >/dev/null 2>&1; then
    ip link add "$outside" type veth peer name "$inside"
    ip link set "$inside" netns "$n"
    ip netns exec "$n" ip link set "$inside" name eth0
  fi
  ip link set "$outside" master "$BRIDGE"
  ip link set "$outside" up
  ip netns exec "$n" ip link set lo up
  ip netns exec "$n" ip addr replace "$addr/24" dev eth0
  ip netns exec "$n" ip link set eth0 up
  ip netns exec "$n" ip route replace default via "$CONTROLLER"
  # `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc
  mkdir -p "/etc/netns/$n"
  printf '%s\n' "$hosts_file" >"/etc/netns/$n/hosts"
  printf '%s\n' "$n" >"/etc/netns/$n/hostname"
done
sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true

# ---- 2. munge ----------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating the munge key"
  if command -v mungekey >/dev/null; then mungekey --create --force --keyfile=/etc/munge/munge.key
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
fi
chown munge:munge /etc/munge/munge.key; chmod 0600 /etc/munge/munge.key
if ! alive /run/munge/munged.pid munged; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged 9>&-
  log "started munged (pid $(cat /run/munge/munged.pid))"
fi
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

# ---- 3. slurm.conf -----------------------------------------------------------------------
install -d -o slurm -g slurm -m 0755 "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_BASE"
for n in "${nodes[@]}"; do install -d -m 0755 "$SPOOL_BASE/$n"; done
# The hosts share this machine's memory: each advertises a share of it (not enforced: no cgroups).
mem_mb=$(awk -v n="$COUNT" '/MemTotal/{printf "%d", $2/1024*0.8/n}' /proc/meminfo)
node_lines=""
for n in "${nodes[@]}"; do
  node_lines+="NodeName=$n NodeAddr=$(addr_of "$n") NodeHostname=$n CPUs=${CPUS} RealMemory=${mem_mb} State=UNKNOWN"$'\n'
done
new_conf="# generated by tsflow test/setup/slurm-up.sh: ${COUNT} node(s) in network namespaces
ClusterName=tsflow
SlurmctldHost=${CTL_HOST}(${CONTROLLER})
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${STATE_DIR}
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
# one slurmd per host: %n is the node name given with slurmd -N
SlurmdSpoolDir=${SPOOL_BASE}/%n
SlurmdPidFile=${RUN_DIR}/slurmd-%n.pid
SlurmdLogFile=${LOG_DIR}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# start jobs as soon as they are submitted (~3 s to well under 1 s)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# the advertised CPUs may exceed the real ones (several nodes share this machine)
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue --states=all for this long (tsflow reads final states)
MinJobAge=${MIN_JOB_AGE}
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
SlurmctldTimeout=60
${node_lines}PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
# a partition that is down: a job sent there stays pending with Reason=PartitionDown
PartitionName=${PARTITION}down Nodes=ALL Default=NO MaxTime=INFINITE State=DOWN"
conf_changed=0
if [[ ! -f $CONF ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
  mkdir -p "$(dirname "$CONF")"
  printf '%s\n' "$new_conf" >"$CONF"; chmod 0644 "$CONF"; conf_changed=1
  log "wrote $CONF"
fi

# ---- 4. daemons --------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || true
if ((conf_changed)); then
  # node and partition changes need a restart (scontrol reconfigure refuses them)
  for pf in "$RUN_DIR"/slurmd*.pid; do [[ -e $pf ]] && alive "$pf" slurmd && { log "config changed: stopping slurmd ($pf)"; stop_daemon "$pf" slurmd; }; done
  alive "$RUN_DIR/slurmctld.pid" slurmctld && { log "config changed: stopping slurmctld"; stop_daemon "$RUN_DIR/slurmctld.pid" slurmctld; }
fi
if ! alive "$RUN_DIR/slurmctld.pid" slurmctld; then
  rm -f "$RUN_DIR/slurmctld.pid"
  /usr/sbin/slurmctld 9>&- || die "slurmctld did not start; see $LOG_DIR/slurmctld.log"
  for _ in $(seq 100); do alive "$RUN_DIR/slurmctld.pid" slurmctld && break; sleep 0.1; done
  alive "$RUN_DIR/slurmctld.pid" slurmctld || die "slurmctld exited; see $LOG_DIR/slurmctld.log: $(tail -n 5 "$LOG_DIR/slurmctld.log" 2>/dev/null)"
  log "started slurmctld (pid $(cat "$RUN_DIR/slurmctld.pid"))"
fi
for n in "${nodes[@]}"; do
  pf=$RUN_DIR/slurmd-$n.pid
  alive "$pf" slurmd && continue
  rm -f "$pf"
  # In the host's network namespace, with its own host name (what jobs see in `hostname`).
  # `ip netns exec` mounts a fresh /sys for the namespace, without the cgroup filesystems that
  # slurmd 22.05 insists on initializing (even with proctrack/linuxproc): mount the v1
  # hierarchies again, inside that private mount namespace only.
  ip netns exec "$n" unshare --uts sh -c "hostname $n &&
    if ! mountpoint -q /sys/fs/cgroup; then
      mount -t tmpfs -o mode=755 tsflow-cgroup /sys/fs/cgroup &&
      for c in cpu cpuacct cpuset memory devices freezer pids; do
        mkdir -p /sys/fs/cgroup/\$c && mount -t cgroup -o \$c cgroup /sys/fs/cgroup/\$c || exit 1
      done &&
      mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    fi &&
    exec /usr/sbin/slurmd -N $n" 9>&- ||
    die "slurmd for $n did not start; see $LOG_DIR/slurmd-$n.log"
  for _ in $(seq 100); do alive "$pf" slurmd && break; sleep 0.1; done
  alive "$pf" slurmd || die "slurmd for $n exited; see $LOG_DIR/slurmd-$n.log: $(tail -n 5 "$LOG_DIR/slurmd-$n.log" 2>/dev/null)"
  log "started slurmd for $n (pid $(cat "$pf"))"
done

# ---- 5. wait for the nodes -----------------------------------------------------------------
deadline=$(($(date +%s) + WAIT_SECS))
until timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; do
  (($(date +%s) < deadline)) || die "slurmctld does not answer; see $LOG_DIR/slurmctld.log"
  sleep 0.2
done
for n in "${nodes[@]}"; do
  state=""
  while (($(date +%s) < deadline)); do
    state=$(timeout 5 sinfo -h -N -n "$n" -p "$PARTITION" -o '%T' 2>/dev/null | head -n 1 || true)
    case $state in
      idle | mixed | allocated | completing) break ;;
      down* | drain* | fail*) scontrol update NodeName="$n" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  case $state in
    idle | mixed | allocated | completing) ;;
    *) die "node $n did not become ready (state '$state'); see $LOG_DIR/slurmd-$n.log and $LOG_DIR/slurmctld.log" ;;
  esac
done
log "ready: partition $PARTITION, nodes ${nodes[*]}, controller $CONTROLLER"

json_nodes=""
for n in "${nodes[@]}"; do json_nodes+="${json_nodes:+,}{\"name\":\"$n\",\"address\":\"$(addr_of "$n")\"}"; done
printf '{"partition":"%s","downPartition":"%sdown","controllerAddress":"%s","nodes":[%s]}\n' "$PARTITION" "$PARTITION" "$CONTROLLER" "$json_nodes"
