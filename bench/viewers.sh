#!/usr/bin/env bash
# Many viewers per node: N players against nginx and each Sluice serving role.
# See bench/README.md ("viewers.sh"). Run as root from anywhere:
#   bash bench/viewers.sh                          # N = 1 000 and 10 000, REPS=3
#   NS=10000 REPS=1 ROLES="nginx origin" bash bench/viewers.sh
#   NS=50000 IDLE_NS=50000 REPS=1 bash bench/viewers.sh
#
# Encodes one real asset with ffmpeg (60 s of 640x360 H.264 at 800 kbit/s CBR,
# 2 s GOP: ~200 KB fragments) and imports it with `sluice import` into tmpfs.
# Then, for each repetition, N and role (interleaved), starts a fresh server
# pinned to SERVER_CPU and runs bench/viewers (pinned to CLIENT_CPU): N
# keep-alive connections, each fetching one fragment every INTERVAL (the
# fragment duration), round-robin over the asset's fragments. Roles:
#   nginx         1 worker, sendfile, tcp_nopush, root = the data directory
#   origin        GOMAXPROCS=1 sluice origin --data <dir>
#   distribution  GOMAXPROCS=1 sluice distribution, in front of a `sluice origin`
#                 on the client's core (not counted); its cache is warmed first
#   sender        GOMAXPROCS=1 sluice sender, every block pinned in RAM by a
#                 look-ahead batch (bench/senderbench hold -pin, on the client's core),
#                 one signed token per block (bench/senderbench urls)
# and two prototypes that are not Sluice (bench/connfloor, its own module): the floor of
# each server model, answering every GET with one in-memory body of the asset's mean
# fragment size (no file, no sendfile; the generator checks status only):
#   floor-nethttp GOMAXPROCS=1, a bare net/http server (goroutine per connection)
#   floor-gnet    GOMAXPROCS=1, a bare gnet v2 event loop (1 loop)
#   origin-nethttp, distribution-nethttp, sender-nethttp: the role with
#                 --http-engine nethttp (net/http alone, the engine before the
#                 event loop): a before/after in the same run
#   origin-nopace origin with --pacing off (what pacing costs per response)
# Idle mode (IDLE_NS): N connections that fetch one fragment each and then stay
# open: RSS per connection.
#
# Knobs (environment):
#   NS="1000 10000"   players per run ("" = none)          IDLE_NS=$NS   connections per idle run ("" = none)
#   REPS=3            interleaved repetitions   ROLES="nginx origin distribution sender"
#   INTERVAL=2s       one fragment per player per interval
#   DURATION=20       measured seconds          WARMUP=        seconds before (default 2 intervals)
#   MOVIE_SECONDS=60  length of the asset       SERVER_CPU=1 CLIENT_CPU=0
#   PER_SRC=20000     connections per client source address 127.0.0.x
#   SLUICE_REV= / SLUICE_BIN=  as in origin-vs-nginx.sh     KEEP=0  1 keeps the temp dirs
#   SLUICE_FLAGS=     more flags for every sluice role in ROLES (e.g. "--pacing off" with ROLES="nginx origin sender")
#   SENDER_FLAGS=     more flags for `sluice sender`
#   BASE_REV= / BASE_BIN=  a second sluice (a git revision, or a binary) for the role
#                 origin-base: `origin` of that build, interleaved with the others (before/after)
set -euo pipefail

NS=${NS-1000 10000}
IDLE_NS=${IDLE_NS-$NS}
REPS=${REPS:-3}
ROLES=${ROLES:-nginx origin distribution sender}
INTERVAL=${INTERVAL:-2s}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-}
MOVIE_SECONDS=${MOVIE_SECONDS:-60}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PER_SRC=${PER_SRC:-20000}
KEEP=${KEEP:-0}
SLUICE_BIN=${SLUICE_BIN:-}
SLUICE_REV=${SLUICE_REV:-}
SLUICE_FLAGS=${SLUICE_FLAGS:-}
SENDER_FLAGS=${SENDER_FLAGS:-}
BASE_REV=${BASE_REV:-}
BASE_BIN=${BASE_BIN:-}

# BENCH_DIR: the repository's bench/ (set it when running a copy of this script,
# e.g. to keep editing the work tree during a run: bash reads a script as it goes).
BENCH_DIR=${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO=$(cd "$BENCH_DIR/.." && pwd)

# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

require_tools go ffmpeg nginx curl taskset ss
[[ $REPS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] || die "REPS and DURATION must be positive integers"
for r in $ROLES; do
	case ${r%-nethttp} in nginx | origin | origin-base | origin-nopace | distribution | sender | floor) ;; *) die "unknown role $r" ;; esac
done
[[ " $ROLES " == *" nginx "* ]] || log "no nginx in ROLES: no ratios"

# Open files: every connection is a descriptor in the generator and in the server.
MAXN=1
for n in $NS $IDLE_NS; do ((n > MAXN)) && MAXN=$n; done
WANT_FD=$((MAXN + 10000))
if (($(ulimit -Hn) < WANT_FD)); then
	ulimit -Hn "$WANT_FD" 2>/dev/null ||
		die "ulimit -Hn is $(ulimit -Hn), below $WANT_FD for $MAXN connections, and cannot be raised (needs root with CAP_SYS_RESOURCE)"
fi
ulimit -n "$WANT_FD"

pin_cores

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /tmp/sluice-viewers.XXXXXX)
if [[ -d /dev/shm && -w /dev/shm ]]; then SHM=/dev/shm; else SHM=$WORK; fi
DATA=$(mktemp -d "$SHM/sluice-viewers-data.XXXXXX")
DATA_DIRS=("$DATA")
bench_traps

# ---------------------------------------------------------------- build
LOAD_BEFORE=$(uptime)
log "load before: $LOAD_BEFORE"
build_sluice
(cd "$REPO" && go build -o "$WORK/viewers" ./bench/viewers && go build -o "$WORK/senderbench" ./bench/senderbench) ||
	die "go build of bench/viewers or bench/senderbench failed"
if [[ " $ROLES " == *" floor-"* ]]; then
	(cd "$BENCH_DIR/connfloor" && go build -o "$WORK/connfloor" .) || die "go build of bench/connfloor failed"
fi
SLUICE=$WORK/sluice
if [[ " $ROLES " == *" origin-base "* ]]; then
	if [[ -n $BASE_BIN ]]; then
		cp "$BASE_BIN" "$WORK/sluice-base"
		BUILT_FROM+="; origin-base: binary $BASE_BIN"
	else
		[[ -n $BASE_REV ]] || die "the role origin-base needs BASE_REV or BASE_BIN"
		build_sluice_rev "$BASE_REV" "$WORK/sluice-base"
		BUILT_FROM+="; origin-base: commit $BUILT_REV"
	fi
fi

# ---------------------------------------------------------------- media
log "encoding ${MOVIE_SECONDS}s of 640x360 at 800 kbit/s with ffmpeg"
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=25" -t "$MOVIE_SECONDS" \
	-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
	-b:v 800k -minrate 800k -maxrate 800k -bufsize 800k -x264-params nal-hrd=cbr \
	-movflags +faststart "$WORK/movie.mp4" || die "ffmpeg failed"
"$SLUICE" import --quiet --data "$DATA" "$WORK/movie.mp4" vod >"$WORK/import.log" 2>&1 ||
	{ cat "$WORK/import.log" >&2; die "sluice import failed"; }
# Paths: <data>/vod/t/<track>/<start>.m4s
#   nginx: /vod/t/<track>/<start>.m4s     origin, distribution: /vod.isml/tracks/<track>/<start>.m4s
: >"$WORK/paths.nginx"
: >"$WORK/paths.origin"
: >"$WORK/sizes"
while IFS= read -r f; do
	rel=${f#"$DATA"/}
	echo "/$rel" >>"$WORK/paths.nginx"
	echo "/vod.isml/tracks/${rel#vod/t/}" >>"$WORK/paths.origin"
	stat -c %s "$f" >>"$WORK/sizes"
done < <(find "$DATA/vod/t" -name '*.m4s' -type f | sort)
NFRAG=$(wc -l <"$WORK/sizes")
((NFRAG > 0)) || die "no fragments imported"
AVG_KB=$(awk '{t+=$1} END {printf "%.0f", t/NR/1000}' "$WORK/sizes")
cp "$WORK/paths.origin" "$WORK/paths.distribution"
cp "$WORK/paths.origin" "$WORK/paths.origin-base"
cp "$WORK/paths.origin" "$WORK/paths.floor-nethttp"
cp "$WORK/paths.origin" "$WORK/paths.floor-gnet"
log "asset: $NFRAG fragments, mean $AVG_KB KB"
export SLUICE_CLUSTER_SECRET
SLUICE_CLUSTER_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
if [[ " $ROLES " == *" sender "* || " $ROLES " == *" sender-nethttp "* ]]; then
	# Blocks in a sender's block directory: vod/<track>/<start>.m4s (sender-load
	# writes the imported fragments as they are); one token per block.
	sed 's|^/vod/t/|vod/|' "$WORK/paths.nginx" >"$WORK/blocks"
	"$WORK/senderbench" urls -blocks "$WORK/blocks" >"$WORK/paths.sender" || die "senderbench urls failed"
fi

# ---------------------------------------------------------------- servers
pick_port() { # below the ephemeral range (32768-), so no client connection holds it
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((10000 + RANDOM % 20000))
		[[ -z $(ss -Htan "sport = :$p") ]] && { echo "$p"; return 0; }
	done
	return 1
}
wait_url() { # pid url: up to 10 s for 200
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || return 1
		curl -sf -o /dev/null --max-time 2 "$2" && return 0
		sleep 0.1
	done
	return 1
}
check_all() { # role port: every fragment answers 200 with the file's length
	local cfg=$WORK/curl-$1.cfg bad
	sed "s|^\(.*\)$|url = \"http://127.0.0.1:$2\1\"\noutput = \"/dev/null\"|" "$WORK/paths.$1" >"$cfg"
	curl -s --max-time 60 -K "$cfg" -w '%{http_code} %{size_download}\n' >"$WORK/check-$1.txt" || true
	bad=$(paste -d' ' "$WORK/check-$1.txt" "$WORK/sizes" | awk '$1 != 200 || $2 != $3 {n++} END {print n + 0}')
	[[ $bad == 0 && $(wc -l <"$WORK/check-$1.txt") -eq $NFRAG ]]
}

# The distribution's origin: one for the whole run, on the client's core.
if [[ " $ROLES " == *" distribution "* || " $ROLES " == *" distribution-nethttp "* ]]; then
	UP_PORT=$(pick_port) || die "no free port"
	start_bg "$WORK/upstream.out" "${PIN_CLI[@]}" "$SLUICE" origin --data "$DATA" --listen "127.0.0.1:$UP_PORT" --log-level warn
	UP_PID=$BG_PID
	wait_url "$UP_PID" "http://127.0.0.1:$UP_PORT$(head -1 "$WORK/paths.origin")" || { cat "$WORK/upstream.out" >&2; die "upstream origin did not start"; }
fi

# start_role role: a fresh server; sets SRV_PID (main pid), SRV_PORT, SRV_PIDS (measured), SRV_EXTRA (to stop)
start_role() {
	local role=$1 i
	SRV_PORT=$(pick_port) || die "no free port"
	SRV_EXTRA=()
	# shellcheck disable=SC2206
	local flags=($SLUICE_FLAGS) kind=$role
	if [[ $role == *-nethttp && $role != floor-* ]]; then
		# The same role on net/http alone (the engine before evhttp).
		kind=${role%-nethttp}
		flags+=(--http-engine nethttp)
	elif [[ $role == origin-nopace ]]; then
		kind=origin
		flags+=(--pacing off)
	fi
	[[ -f $WORK/paths.$role ]] || cp "$WORK/paths.$kind" "$WORK/paths.$role"
	case $kind in
	nginx)
		rm -rf "$WORK/nginx"
		nginx_conf "$WORK/nginx" "127.0.0.1:$SRV_PORT backlog=4096" "$DATA" "$WANT_FD"
		start_bg "$WORK/nginx.out" "${PIN_SRV[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" \
			-c "$WORK/nginx/nginx.conf" -g 'daemon off;'
		;;
	origin | origin-base)
		local bin=$SLUICE
		[[ $role == origin-base ]] && bin=$WORK/sluice-base
		start_bg "$WORK/$role.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$bin" origin --data "$DATA" \
			--listen "127.0.0.1:$SRV_PORT" --log-level warn "${flags[@]}"
		;;
	floor-nethttp | floor-gnet)
		start_bg "$WORK/$role.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$WORK/connfloor" -impl "${role#floor-}" \
			-listen "127.0.0.1:$SRV_PORT" -body $((AVG_KB * 1000))
		;;
	distribution)
		start_bg "$WORK/distribution.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$SLUICE" distribution \
			--origin "http://127.0.0.1:$UP_PORT" --listen "127.0.0.1:$SRV_PORT" --log-level warn "${flags[@]}"
		;;
	sender)
		local sdir
		sdir=$(mktemp -d "$SHM/sluice-viewers-sender.XXXXXX")
		DATA_DIRS+=("$sdir")
		# shellcheck disable=SC2206
		flags+=($SENDER_FLAGS)
		start_bg "$WORK/sender.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$SLUICE" sender --data "$sdir" \
			--listen "127.0.0.1:$SRV_PORT" --id viewers --ram 1G --log-level warn "${flags[@]}"
		SRV_PID=$BG_PID
		wait_url "$SRV_PID" "http://127.0.0.1:$SRV_PORT/healthz" || { cat "$WORK/sender.out" >&2; die "sender did not start"; }
		"$SLUICE" sender-load --senders "http://127.0.0.1:$SRV_PORT" --replicas 1 "$DATA" vod >"$WORK/sender-load.log" 2>&1 ||
			{ cat "$WORK/sender-load.log" >&2; die "sluice sender-load failed"; }
		start_bg "$WORK/hold.out" "${PIN_CLI[@]}" "$WORK/senderbench" hold -sender "http://127.0.0.1:$SRV_PORT" \
			-blocks "$WORK/blocks" -scheduler viewers -pin
		SRV_EXTRA=("$BG_PID")
		for ((i = 0; i < 400; i++)); do
			grep -q '^READY' "$WORK/hold.out" && break
			kill -0 "$BG_PID" 2>/dev/null || { cat "$WORK/hold.out" >&2; die "senderbench hold failed"; }
			sleep 0.1
		done
		grep -q '^READY' "$WORK/hold.out" || die "senderbench hold: not ready within 40 s"
		;;
	esac
	SRV_PID=${SRV_PID:-$BG_PID}
	[[ $kind == sender ]] || SRV_PID=$BG_PID
	wait_url "$SRV_PID" "http://127.0.0.1:$SRV_PORT$(head -1 "$WORK/paths.$role")" ||
		{ cat "$WORK/$role.out" >&2; die "$role did not answer within 10 s"; }
	[[ $role == floor-* ]] || check_all "$role" "$SRV_PORT" || die "$role does not serve every fragment with status 200 and the file's length"
	SRV_PIDS="$SRV_PID"
	[[ $role == nginx ]] && SRV_PIDS="$SRV_PID $(cat /proc/"$SRV_PID"/task/*/children)"
	SRV_PIDS=${SRV_PIDS// /,}
	SRV_PIDS=${SRV_PIDS%,}
}
stop_role() {
	local p
	for p in "${SRV_EXTRA[@]}"; do stop_forget "$p"; done
	stop_forget "$SRV_PID"
	unset SRV_PID
}

# ---------------------------------------------------------------- runs
RESULTS=$WORK/results.tsv
: >"$RESULTS"
FAILED=0
RUNS=()
for ((rep = 1; rep <= REPS; rep++)); do
	for n in $NS; do for r in $ROLES; do RUNS+=("fetch $n $r $rep"); done; done
	for n in $IDLE_NS; do for r in $ROLES; do RUNS+=("idle $n $r $rep"); done; done
done
k=0
for run in "${RUNS[@]}"; do
	read -r mode n role rep <<<"$run"
	k=$((k + 1))
	start_role "$role"
	load=$(cut -d' ' -f1 /proc/loadavg)
	args=(-mode "$mode" -addr "127.0.0.1:$SRV_PORT" -paths "$WORK/paths.$role" -n "$n" -interval "$INTERVAL" -duration "${DURATION}s" -pids "$SRV_PIDS" -per-src "$PER_SRC")
	[[ -n $WARMUP ]] && args+=(-warmup "${WARMUP}s")
	[[ $role == floor-* ]] || args+=(-sizes "$WORK/sizes")
	out=$WORK/run-$mode-$n-$role-$rep.txt
	if ! "${PIN_CLI[@]}" timeout -k 5 $((DURATION + 600)) "$WORK/viewers" "${args[@]}" >"$out" 2>"$out.err"; then
		cat "$out.err" >&2
		die "viewers against $role ($mode, $n) failed"
	fi
	stop_role
	line=$(grep '^RESULT ' "$out") || die "no RESULT from viewers"
	echo "$mode $n $role $rep load1=$load ${line#RESULT }" >>"$RESULTS"
	errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
	[[ $errs == 0 ]] || { log "$role $mode $n: $errs errors"; FAILED=1; }
	summary=$(tr ' ' '\n' <<<"$line" | grep -E '^(achieved_pct|p50_ms|p99_ms|max_ms|errors|server_cpu_pct|us_per_resp|rss_per_conn_kb|gen_cpu_pct|other_cpu_pct)=' | tr '\n' ' ')
	log "[$k/${#RUNS[@]}] $mode n=$n $role rep $rep (load $load): $summary"
done
LOAD_AFTER=$(uptime)
log "load after: $LOAD_AFTER"

# ---------------------------------------------------------------- table
echo
echo "Sluice viewers vs nginx, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, one fragment per player every $INTERVAL, ${DURATION}s window, ${REPS} run(s) each (median)"
echo "server on core ${PIN_SRV[2]:-any} (nginx 1 worker; sluice GOMAXPROCS=1), bench/viewers on core ${PIN_CLI[2]:-any}; asset: $NFRAG fragments of mean $AVG_KB KB (tmpfs)"
echo "sluice: $BUILT_FROM${SLUICE_FLAGS:+; flags: $SLUICE_FLAGS}${SENDER_FLAGS:+; sender flags: $SENDER_FLAGS}"
echo "load before: ${LOAD_BEFORE##*load average: }; after: ${LOAD_AFTER##*load average: }"
echo
awk -v roles="$ROLES" '
function kv(s,    a) { return (match($0, " " s "=[^ ]*") ? substr($0, RSTART + length(s) + 2, RLENGTH - length(s) - 2) : 0) }
function median(key, col,    n, i, j, a, t) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = v[key, i, col]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
BEGIN { nc = split("achieved_pct us_per_resp server_cpu_pct rss_per_conn_kb p50_ms p99_ms max_ms errors gen_cpu_pct other_cpu_pct load1", cols, " ") }
{
	key = $1 SUBSEP $2 SUBSEP $3; cnt[key]++
	for (c = 1; c <= nc; c++) v[key, cnt[key], c] = kv(cols[c])
	errsum[key] += kv("errors")
	if (!(($1 SUBSEP $2) in seen)) { seen[$1 SUBSEP $2] = 1; order[++no] = $1 SUBSEP $2 }
}
END {
	nr = split(roles, rs, " ")
	print "| mode | N | server | achieved rate % | server CPU % | µs/response | RSS/conn KB | p50 ms | p99 ms | max ms | errors | generator CPU % | other CPU % | load |"
	print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (o = 1; o <= no; o++) {
		split(order[o], mn, SUBSEP)
		for (k = 1; k <= nr; k++) {
			key = order[o] SUBSEP rs[k]
			if (!(key in cnt)) continue
			for (c = 1; c <= nc; c++) m[rs[k], c] = median(key, c)
			if (mn[1] == "idle")
				printf "| idle | %d | %s | | | | %.2f | | | | %d | %.0f | %.0f | %.2f |\n", mn[2], rs[k], m[rs[k], 4], errsum[key], m[rs[k], 9], m[rs[k], 10], m[rs[k], 11]
			else
				printf "| fetch | %d | %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.1f | %d | %.0f | %.0f | %.2f |\n", mn[2], rs[k],
					m[rs[k], 1], m[rs[k], 3], m[rs[k], 2], m[rs[k], 4], m[rs[k], 5], m[rs[k], 6], m[rs[k], 7], errsum[key], m[rs[k], 9], m[rs[k], 10], m[rs[k], 11]
		}
		if (!((order[o] SUBSEP "nginx") in cnt)) continue
		for (k = 1; k <= nr; k++) {
			if (rs[k] == "nginx" || !((order[o] SUBSEP rs[k]) in cnt)) continue
			r = rs[k]
			rss = (m["nginx", 4] > 0 ? sprintf("%.1f×", m[r, 4] / m["nginx", 4]) : "n/a")
			if (mn[1] == "idle")
				printf "| idle | %d | **%s/nginx** | | | | **%s** | | | | | | | |\n", mn[2], r, rss
			else
				printf "| fetch | %d | **%s/nginx** | | %.2f× | **%.2f×** | **%s** | %.2f× | **%.2f×** | %.2f× | | | | |\n", mn[2], r,
					(m["nginx", 3] > 0 ? m[r, 3] / m["nginx", 3] : 0), (m["nginx", 2] > 0 ? m[r, 2] / m["nginx", 2] : 0), rss,
					(m["nginx", 5] > 0 ? m[r, 5] / m["nginx", 5] : 0), (m["nginx", 6] > 0 ? m[r, 6] / m["nginx", 6] : 0), (m["nginx", 7] > 0 ? m[r, 7] / m["nginx", 7] : 0)
		}
	}
}' "$RESULTS"
echo
echo "achieved rate = responses in the window ÷ (N ÷ interval): below ~99 % the generator or the server fell behind."
echo "µs/response = server utime+stime (/proc) over the window ÷ responses. RSS/conn = (server RSS at the end of"
echo "the window − RSS before the first connection) ÷ N. Latency = request written → last body byte. other CPU ="
echo "the rest of the machine (other users; the distribution's origin and the sender's scheduler part), % of one core."
echo "load = 1-minute load average when the run started."
echo
echo "per run:"
sed 's/^/  /' "$RESULTS"
exit "$FAILED"
