#!/usr/bin/env bash
# Brings up a single-host Grid Engine (Debian's gridengine 8.1.9, "Son of Grid Engine") on this
# machine for the GridEngineProvider tests, without systemd. Idempotent and safe to run from
# several test processes at once (flock): installs the packages if missing, starts the daemons
# that are not running (pid files), (re)applies the cluster configuration, then waits until the
# queue instance accepts jobs.
#
# Output: log lines on stderr; on success the last stdout line is one JSON object
#   {"SGE_ROOT":..., "SGE_CELL":..., "queue":..., "pe":..., "host":..., "slots":...}
# which test/helpers/gridengine.ts reads.
#
#   SGE_SLOTS=<n>   slots of the queue (default 8: may exceed the cores; the provider tests run
#                   several small blocks at once on a 2-core machine)
# Adapted from ../shared/reference/schedulers/sge-up.sh (the issue's reference material).
set -euo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
QUEUE=all.q
PE=smp
SLOTS=${SGE_SLOTS:-8}
HOST=$(hostname -s)
QM_PID=/var/spool/gridengine/qmaster/qmaster.pid
EXECD_SPOOL=/var/spool/gridengine/execd

log() { printf '[sge-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts sge_qmaster/sge_execd)"

# One bring-up at a time: test files run in parallel and may all call this.
LOCK=/run/lock/tsflow-sge-up.lock
[[ -d /run/lock ]] || LOCK=/tmp/tsflow-sge-up.lock
exec 9>"$LOCK"
flock -w 600 9 || die "another sge-up.sh held the lock for 600 s"

WORK=$(mktemp -d /tmp/tsflow-sge-up.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# A pid file names a live (not zombie) process with the expected command name.
running() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# ---- packages --------------------------------------------------------------------------------
if ! command -v qconf >/dev/null || [[ ! -x /usr/sbin/sge_qmaster || ! -x /usr/sbin/sge_execd ]]; then
  log "installing gridengine-master, gridengine-exec, gridengine-client"
  # The master's postinst creates the cell only when debconf says so; answer before installing.
  for pkg in gridengine-common gridengine-master gridengine-client gridengine-exec; do
    echo "$pkg shared/gridenginemaster string $HOST"
    echo "$pkg shared/gridenginecell string default"
    echo "$pkg shared/gridengineconfig boolean true"
  done | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -qq update >&2 || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 -qq install -y --no-install-recommends \
    gridengine-master gridengine-exec gridengine-client >&2 || die "apt-get install gridengine failed"
fi
[[ -f $SGE_ROOT/$SGE_CELL/common/act_qmaster ]] || die "the cell $SGE_ROOT/$SGE_CELL was not created by the package's postinst"

# ---- host names ------------------------------------------------------------------------------
# The host name resolves to 127.0.0.1, which reverse-resolves to "localhost"; commlib then
# refuses clients ("client IP resolved to host name localhost ... not identical"). An alias makes
# the two one host.
echo "$HOST localhost" >"$SGE_ROOT/$SGE_CELL/common/host_aliases"
echo "$HOST" >"$SGE_ROOT/$SGE_CELL/common/act_qmaster"

# ---- qmaster ---------------------------------------------------------------------------------
install -d -o sgeadmin -g sgeadmin /var/run/gridengine "$EXECD_SPOOL"
if running $QM_PID sge_qmaster; then
  log "sge_qmaster is running (pid $(<$QM_PID))"
else
  rm -f $QM_PID
  /usr/sbin/sge_qmaster
  for _ in $(seq 150); do qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
  log "started sge_qmaster (pid $(cat $QM_PID 2>/dev/null))"
fi
qconf -sh >/dev/null || die "sge_qmaster does not answer qconf"

# ---- configuration (every step idempotent) ----------------------------------------------------
# qconf -m* opens $EDITOR on a temporary file; a sed script is a non-interactive editor.
editor() { printf '#!/bin/sh\nexec sed -i %s "$1"\n' "$1" >"$WORK/editor-$2"; chmod +x "$WORK/editor-$2"; echo "$WORK/editor-$2"; }
# root may submit (the tests run as root); accounting records are written at once, so qacct
# knows a job right after it left qstat.
EDITOR=$(editor "-e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
  -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00/' \
  -e '/^ *flush_time=/d'" global) qconf -mconf global >/dev/null 2>&1 || true
# schedule every second (the default is 15 s), and right after a submit or a job's end
EDITOR=$(editor "-e 's/^schedule_interval .*/schedule_interval 0:0:1/' -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
  -e 's/^flush_finish_sec .*/flush_finish_sec 1/'" sched) qconf -msconf >/dev/null 2>&1 || true
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null
# The `exclusive` complex (an EXCL boolean: a job requesting it is alone on its host) is not in
# the default complex list; the provider's exclusive option requests it.
if ! qconf -sc | awk '$1 == "exclusive"' | grep -q .; then
  { qconf -sc | grep -v '^#'; echo 'exclusive excl BOOL EXCL YES YES 0 1000'; } >"$WORK/complexes"
  qconf -Mc "$WORK/complexes" >/dev/null
fi
# The execution host offers the `exclusive` complex, so `-l exclusive=true` (the provider's
# exclusive option) can be scheduled here.
if ! qconf -sel 2>/dev/null | grep -qx "$HOST"; then
  printf '%s\n' "hostname $HOST" 'load_scaling NONE' 'complex_values exclusive=TRUE' 'user_lists NONE' 'xuser_lists NONE' \
    'projects NONE' 'xprojects NONE' 'usage_scaling NONE' 'report_variables NONE' >"$WORK/exechost"
  qconf -Ae "$WORK/exechost" >/dev/null
else
  qconf -se "$HOST" | grep -q 'exclusive=TRUE' || qconf -mattr exechost complex_values exclusive=TRUE "$HOST" >/dev/null
fi
qconf -shgrpl 2>/dev/null | grep -qx '@allhosts' || {
  printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$WORK/hostgroup"
  qconf -Ahgrp "$WORK/hostgroup" >/dev/null
}
if ! qconf -spl 2>/dev/null | grep -qx $PE; then
  printf '%s\n' "pe_name $PE" 'slots 9999' 'user_lists NONE' 'xuser_lists NONE' 'start_proc_args NONE' 'stop_proc_args NONE' \
    'allocation_rule $pe_slots' 'control_slaves TRUE' 'job_is_first_task TRUE' 'urgency_slots min' 'accounting_summary FALSE' \
    'qsort_args NONE' >"$WORK/pe"
  qconf -Ap "$WORK/pe" >/dev/null
fi
# The queue: its slots, the PE, bash as the shell, and no load thresholds (a busy 2-core machine
# would otherwise put the queue in alarm state and nothing would be scheduled).
QUEUE_EDIT=$(editor "-e 's/^hostlist .*/hostlist @allhosts/' -e 's/^slots .*/slots $SLOTS/' -e 's/^pe_list .*/pe_list $PE/' \
  -e 's|^shell .*|shell /bin/bash|' -e 's/^shell_start_mode .*/shell_start_mode unix_behavior/' \
  -e 's/^load_thresholds .*/load_thresholds NONE/'" queue)
if qconf -sql 2>/dev/null | grep -qx $QUEUE; then
  EDITOR=$QUEUE_EDIT qconf -mq $QUEUE >/dev/null 2>&1 || true
else
  EDITOR=$QUEUE_EDIT qconf -aq $QUEUE >/dev/null
fi

# ---- execd -----------------------------------------------------------------------------------
execd_pid=$(ls $EXECD_SPOOL/*/execd.pid 2>/dev/null | head -1 || true)
if [[ -n $execd_pid ]] && running "$execd_pid" sge_execd; then
  log "sge_execd is running (pid $(<"$execd_pid"))"
else
  rm -f $EXECD_SPOOL/*/execd.pid
  /usr/sbin/sge_execd
  for _ in $(seq 50); do
    execd_pid=$(ls $EXECD_SPOOL/*/execd.pid 2>/dev/null | head -1 || true)
    [[ -n $execd_pid ]] && break
    sleep 0.2
  done
  log "started sge_execd (pid $(cat "$execd_pid" 2>/dev/null))"
fi

# ---- ready: the queue instance has a load report and no error/alarm/unknown state -------------
state='?'
for _ in $(seq 150); do
  line=$(qstat -f -q "$QUEUE@$HOST" 2>/dev/null | awk -v q="$QUEUE@$HOST" '$1 == q')
  load=$(awk '{print $4}' <<<"$line")
  state=$(awk '{print $6}' <<<"$line")
  if [[ -n $load && $load != -NA- && -z $state ]]; then break; fi
  # a queue left in error state by an earlier crash: clear it
  [[ $state == *E* ]] && qmod -cq "$QUEUE" >/dev/null 2>&1 || true
  sleep 0.2
done
[[ -z $state ]] || die "queue instance $QUEUE@$HOST is in state '$state' (see qstat -f -explain aAcE)"
log "ready: $QUEUE@$HOST with $SLOTS slots, parallel environment $PE"
printf '{"SGE_ROOT":"%s","SGE_CELL":"%s","queue":"%s","pe":"%s","host":"%s","slots":%d}\n' \
  "$SGE_ROOT" "$SGE_CELL" "$QUEUE" "$PE" "$HOST" "$SLOTS"
