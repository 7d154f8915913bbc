# bench/lib.sh — shell helpers shared by the bench scripts (sourced, not run).
#
# Process bookkeeping: every background process a script starts goes through
# start_bg, which records it in PIDS; cleanup (installed by bench_traps) stops
# them all on exit, then removes WORK and DATA_DIRS unless KEEP=1. A script
# that has more to undo defines bench_cleanup_extra, which cleanup calls
# once the processes are stopped.
#
# Contract: the script sets REPO (the checkout), WORK (a scratch directory),
# KEEP, and may set DATA_DIRS; it calls bench_traps once WORK exists.

PIDS=()      # every background process started with start_bg
DATA_DIRS=() # directories removed on exit besides WORK

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# require_tools TOOL...: die naming the first one not installed.
require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t is not installed"
	done
}

# pin_cores: PIN_SRV and PIN_CLI, the taskset prefixes that put the server on
# SERVER_CPU and the client on CLIENT_CPU — empty on a one-core machine.
pin_cores() {
	if [[ $(nproc) -ge 2 ]]; then
		PIN_SRV=(taskset -c "$SERVER_CPU")
		PIN_CLI=(taskset -c "$CLIENT_CPU")
	else
		log "only one CPU: no pinning"
		PIN_SRV=()
		PIN_CLI=()
	fi
}

# stop_pid PID: TERM, wait up to 5 s, then KILL it and the children it had.
stop_pid() {
	local pid=$1 i kids k
	kill -0 "$pid" 2>/dev/null || return 0
	kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
	wait "$pid" 2>/dev/null || true
}

# forget_pid PID: drop a pid that has been waited for from PIDS (it may be reused).
forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

stop_forget() {
	stop_pid "$1"
	forget_pid "$1"
}

# start_bg LOGFILE cmd...: run cmd in the background, output to LOGFILE;
# its pid is in BG_PID and in PIDS.
start_bg() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

# cleanup stops every process in PIDS, runs bench_cleanup_extra if the
# script defines one, and removes WORK and DATA_DIRS unless KEEP=1.
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
	if [[ $KEEP == 1 ]]; then
		log "kept $WORK ${DATA_DIRS[*]}"
	else
		rm -rf "$WORK" "${DATA_DIRS[@]}"
	fi
	exit "$rc"
}

bench_traps() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# build_sluice: the sluice binary to measure, at $WORK/sluice — a copy of
# SLUICE_BIN when set, else a build of SLUICE_REV (git archive) when set,
# else a build of the work tree. BUILT_FROM says which, for the report.
build_sluice() {
	if [[ -n ${SLUICE_BIN:-} ]]; then
		[[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not an executable"
		cp "$SLUICE_BIN" "$WORK/sluice"
		BUILT_FROM="binary $SLUICE_BIN"
	elif [[ -n ${SLUICE_REV:-} ]]; then
		build_sluice_rev "$SLUICE_REV" "$WORK/sluice"
		BUILT_FROM="commit $BUILT_REV ($(git -C "$REPO" log -1 --format=%s "$BUILT_REV" | cut -c1-70))"
	else
		log "building sluice from the work tree"
		(cd "$REPO" && go build -o "$WORK/sluice" ./cmd/sluice) ||
			die "go build failed (a tree in mid-edit? SLUICE_REV=HEAD builds the last commit)"
		BUILT_FROM="work tree at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
		if [[ -n $(git -C "$REPO" status --porcelain -- . ':(exclude)bench' 2>/dev/null) ]]; then
			BUILT_FROM+=" + uncommitted changes"
		fi
	fi
	log "sluice: $BUILT_FROM"
}

# build_sluice_rev REV OUT: build cmd/sluice as it is at git revision REV
# (git archive into a scratch directory under WORK) to OUT; the short hash
# is left in BUILT_REV.
build_sluice_rev() {
	local src
	BUILT_REV=$(git -C "$REPO" rev-parse --short "$1^{commit}") || die "no git revision $1"
	log "building sluice at $BUILT_REV (git archive)"
	src=$(mktemp -d "$WORK/src.XXXXXX")
	git -C "$REPO" archive "$BUILT_REV" | tar -x -C "$src" || die "git archive $BUILT_REV failed"
	(cd "$src" && go build -o "$2" ./cmd/sluice) || die "go build of $BUILT_REV failed"
}

# nginx_conf DIR LISTEN ROOT CONNECTIONS: write DIR/nginx.conf for the
# baseline — one worker, sendfile, keep-alive, no access log — serving ROOT
# on LISTEN (e.g. "127.0.0.1:8080 backlog=4096").
nginx_conf() {
	local dir=$1 listen=$2 root=$3 conns=$4
	mkdir -p "$dir/tmp"
	cat >"$dir/nginx.conf" <<EOF
# written by bench/lib.sh nginx_conf
user root root;
worker_processes 1;
worker_rlimit_nofile $conns;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $conns; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    types { video/mp4 m4s mp4; }
    default_type application/octet-stream;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen $listen;
        root $root;
    }
}
EOF
}
