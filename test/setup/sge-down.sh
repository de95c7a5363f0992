#!/usr/bin/env bash
# Stops the Grid Engine that sge-up.sh started: deletes every job, then stops sge_execd and
# sge_qmaster through their pid files (SIGTERM, SIGKILL after 15 s). Safe to run twice; holds the
# same lock as sge-up.sh so a bring-up and a tear-down never interleave.
set -uo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
log() { printf '[sge-down] %s\n' "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }

LOCK=/run/lock/tsflow-sge-up.lock
[[ -d /run/lock ]] || LOCK=/tmp/tsflow-sge-up.lock
exec 9>"$LOCK"
flock -w 600 9 || { log "another sge-up.sh/sge-down.sh held the lock for 600 s"; exit 1; }

state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
stop() { # command-name pid-file
  local pid
  [[ -s $2 ]] || { log "$1: no pid file"; return 0; }
  pid=$(<"$2")
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$1" || $(state "$pid") == Z ]]; then
    log "$1: not running (stale pid $pid)"
    rm -f "$2"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 150); do [[ $(state "$pid") =~ ^[RSD]$ ]] || break; sleep 0.1; done
  if [[ $(state "$pid") =~ ^[RSD]$ ]]; then log "$1: still running 15 s after SIGTERM, SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$2"
  log "$1: stopped (pid $pid)"
}

if command -v qdel >/dev/null && qconf -sh >/dev/null 2>&1; then qdel -f -u '*' >/dev/null 2>&1 || true; fi
for pidfile in /var/spool/gridengine/execd/*/execd.pid; do
  [[ -e $pidfile ]] && stop sge_execd "$pidfile"
done
stop sge_qmaster /var/spool/gridengine/qmaster/qmaster.pid
