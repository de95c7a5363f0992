#!/usr/bin/env bash
# slurm-down.sh: stops what slurm-up.sh started (jobs, the slurmd of every host, slurmctld,
# munged) and removes the network-namespace hosts and their bridge. Safe to run when nothing
# runs. TSF_SLURM_PURGE=1 also wipes the controller's state (job ids restart at 1).
set -uo pipefail
PREFIX=${TSF_SLURM_PREFIX:-tsfslurm}
COUNT=${TSF_SLURM_NODES:-2}
BRIDGE=br-${PREFIX:0:12}
RUN_DIR=/run/slurm
LOCK=/run/lock/tsflow-slurm-up.lock
log() { printf '[slurm-down] %s\n' "$*" >&2; }

mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock -w 300 9 || { log "could not take $LOCK"; exit 1; }

alive() { # pidfile name
  local pid st
  [[ -s $1 ]] || return 1
  pid=$(cat "$1")
  [[ -r /proc/$pid/stat && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] || return 1
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  [[ -n $st && $st != Z && $st != X ]]
}
stop() { # pidfile name
  alive "$1" "$2" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do alive "$1" "$2" || break; sleep 0.1; done
  alive "$1" "$2" && { log "$2 (pid $pid) outlived SIGTERM by 10 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null; }
  rm -f "$1"
  log "stopped $2 (pid $pid)"
}

# jobs first, so no slurmstepd outlives its slurmd
if command -v scancel >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
  timeout 10 scancel --full --quiet --state=PENDING 2>/dev/null
  timeout 10 scancel --full --quiet --state=RUNNING 2>/dev/null
  timeout 10 scancel --full --quiet --state=SUSPENDED 2>/dev/null
  sleep 1
fi
for i in $(seq 1 "$COUNT"); do stop "$RUN_DIR/slurmd-${PREFIX}${i}.pid" slurmd; done
stop "$RUN_DIR/slurmctld.pid" slurmctld
stop /run/munge/munged.pid munged

for i in $(seq 1 "$COUNT"); do
  ns=${PREFIX}${i}
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [[ -n ${pids// /} ]]; then
      log "$ns: killing what still runs there: $pids"
      kill -KILL $pids 2>/dev/null
    fi
    ip netns del "$ns" && log "deleted netns $ns"
  fi
  ip link del "v${PREFIX:0:8}${i}r" 2>/dev/null
  rm -rf "/etc/netns/$ns"
done
ip link del "$BRIDGE" 2>/dev/null && log "deleted bridge $BRIDGE"
if [[ ${TSF_SLURM_PURGE:-0} == 1 ]]; then
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
  log "controller and slurmd state purged"
fi
exit 0
