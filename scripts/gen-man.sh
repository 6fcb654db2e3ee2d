#!/bin/sh
# gen-man.sh DRONEGATE_BINARY - write the dronegate(8) man page to stdout,
# with the OPTIONS section generated from `dronegate --help` (so it lists
# every flag of that binary) and the version from `dronegate --version`.
# gen-man.sh --sim SIM_BINARY DRONEGATE_BINARY - dronegate-sim(1): its
# --help text as the OPTIONS section.
# Called by `make install` (build/dronegate.8, build/dronegate-sim.1).
set -eu
if [ "$1" = "--sim" ]; then
    sim=$2
    ver=$($3 --version | sed -n 's/^dronegate \([^ ]*\).*/\1/p')
    cat <<HEAD
.TH DRONEGATE\-SIM 1 "" "dronegate $ver" "User Commands"
.SH NAME
dronegate\-sim \- simulated drones and load generator for dronegate
.SH SYNOPSIS
.B dronegate\-sim
.RI [ FLAGS ]
.SH DESCRIPTION
.B dronegate\-sim
connects simulated drones to a dronegate gateway over WebSocket, flies them
on missions, sends their telemetry, answers commands and reports the
acknowledgement latency. Each flag is also an environment variable
\fBDRONEGATE_SIM_\fINAME\fR.
.SH OPTIONS
.nf
HEAD
    $sim --help | sed -e '1d' -e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/^\./\\\&./'
    cat <<'TAIL'
.fi
.SH SEE ALSO
.BR dronegate (8)
TAIL
    exit 0
fi
bin=$1
ver=$($bin --version | sed -n 's/^dronegate \([^ ]*\).*/\1/p')
cat <<HEAD
.TH DRONEGATE 8 "" "dronegate $ver" "System Administration"
.SH NAME
dronegate \- telemetry gateway for drone fleets
.SH SYNOPSIS
.B dronegate
.RI [ FLAGS ]
.br
.B dronegate token
.I DRONE_ID
.RB [ \-\-auth\-secret
.IR S ]
.br
.B dronegate
.BR \-\-version " | " \-\-help
.SH DESCRIPTION
.B dronegate
receives drone telemetry over WebSocket (\fB/ws/\fIDRONE_ID\fR), validates it,
stores it in batches (SQLite, PostgreSQL or InfluxDB) and acknowledges each
message only after the store committed it.
It serves a REST API (\fB/api/v1/\fR), a live stream, drone commands,
Prometheus metrics (\fB/metrics\fR), \fB/healthz\fR, \fB/readyz\fR and the operator
dashboard (\fB\-\-web\-root\fR) on one HTTP port.
.PP
Every flag is also an environment variable: \fB\-\-max\-message\fR is
\fBDRONEGATE_MAX_MESSAGE\fR. Flags override the environment.
.SH OPTIONS
HEAD
$bin --help | awk '
function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
/^  --[a-z]/ {
    name = $1; sub(/^--/, "", name); val = ($2 == "VALUE") ? " \\fIVALUE\\fR" : "";
    inopt = 1; printf ".TP\n\\fB\\-\\-%s\\fR%s\n", esc(name), val; next }
/^ +\[DRONEGATE_/ { env = $1; gsub(/[\[\]]/, "", env); pending_env = env; next }
inopt && /^      [^ ]/ { sub(/^ +/, ""); line = esc($0); sub(/^\./, "\\\\\\&.", line); printf "%s\n(\\fB%s\\fR)\n", line, esc(pending_env); next }
'
cat <<'TAIL'
.SH SIGNALS
.TP
.B SIGTERM, SIGINT
Drain: stop accepting, store and acknowledge what was received, close drone
connections with 1001, then exit (at most \fB\-\-shutdown\-timeout\fR).
.SH FILES
.TP
.I /etc/default/dronegate
DRONEGATE_* variables read by the systemd unit (dronegate.service).
.TP
.I /var/lib/dronegate/
The SQLite store and spool of the systemd unit (StateDirectory).
.TP
.I /usr/share/dronegate/web/
The dashboard files.
.SH EXIT STATUS
0 after a clean stop or \fB\-\-help\fR/\fB\-\-version\fR; 2 for a bad flag;
1 when the gateway could not start.
.SH SEE ALSO
.BR dronegate\-sim (1),
.BR systemd.service (5)
TAIL
