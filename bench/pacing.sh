#!/usr/bin/env bash
# Client-controlled pacing benchmark (docs/pacing.md). Needs root (network
# namespaces, tc, packet sockets); not part of CI. See bench/README.md.
#
#   sudo bash bench/pacing.sh            # ~9 minutes: 2 buffers x 3 modes
#
# Testbed (the research notes' §3.1, reproduced):
#
#   sl-srv                         sl-rtr                                    sl-cli
#   s0 10.98.0.1 ==veth== r0 ->[delay line, 10 ms each way]-> r1 [tbf] ==veth== c0 10.98.0.2
#
# netem and fq do not exist in this kernel, so the propagation delay is a
# userspace delay line (bench/pacebench delay: AF_PACKET, GSO frames cut into
# MSS segments) and the bottleneck a tbf qdisc on the router's client-facing
# port (server -> client direction), with a shallow and a deep queue.
#
# In sl-srv: `sluice serve --pacing MODE` with a live channel pushed by
# `sluice push --loop` from a 3-rendition H.264 file made with ffmpeg, and a
# TCP echo server. In sl-cli: `sluice play --json --pacing-log` and the
# competing latency-sensitive flow, a 64-byte TCP ping every 10 ms.
#
# Modes, each a fresh origin and a fresh player session:
#   unpaced  origin --pacing off,    player --pacing off
#   client   origin --pacing client, player --pacing spec (Sluice-Pacing + CMCD rtp, --burst)
#   server   origin --pacing server, player --pacing off (the origin's bottleneck estimate)
#   cmcd     origin --pacing client, player --pacing cmcd (rtp only)       [optional]
#   dashjs   origin --pacing client, player --pacing dashjs (dash.js rtp)  [optional]
#
# Measured per run: retransmitted segments (nstat in sl-srv) per MB of media,
# tbf drops, steady-state video chunk download time (player log), stalls, and
# the competing flow's added delay over its idle RTT while a video chunk is in
# flight (median, p99). `pacebench table` prints them as ratios to unpaced.
#
# Knobs (environment):
#   MODES="unpaced client server"  BUFFERS="shallow deep"  REPS=1
#   RATE=20mbit  SHALLOW=75000  DEEP=500000 (tbf limit, bytes)  DELAY=10ms (one way)
#   DURATION=60 (player seconds per run)  CC=bbr (server congestion control)
#   LADDER="11M 5M 2500k"  FRAG=2 (seconds)  MULT=1.5 (--rate-multiplier)  BURST=4
#   PLAYER_BUFFER=6  MIN_BUFFER=2 (seconds)  OUT=<dir> (results; default a temp dir)
#   SLUICE_REV=<git rev> (build that commit, e.g. HEAD)  SLUICE_BIN=<path> (use a built binary)
#   KEEP=0 (1 keeps the work directory)  SERVE_LOG=info (the origin's --log-level; debug logs
#   every pacing decision and estimator measurement to <run>/serve.log)
set -euo pipefail

MODES=${MODES:-unpaced client server}
BUFFERS=${BUFFERS:-shallow deep}
REPS=${REPS:-1}
RATE=${RATE:-20mbit}
SHALLOW=${SHALLOW:-75000}
DEEP=${DEEP:-500000}
DELAY=${DELAY:-10ms}
DURATION=${DURATION:-60}
CC=${CC:-bbr}
LADDER=${LADDER:-11M 5M 2500k}
FRAG=${FRAG:-2}
MULT=${MULT:-1.5}
BURST=${BURST:-4}
PLAYER_BUFFER=${PLAYER_BUFFER:-6}
MIN_BUFFER=${MIN_BUFFER:-2}
SLUICE_BIN=${SLUICE_BIN:-}
SLUICE_REV=${SLUICE_REV:-}
KEEP=${KEEP:-0}
SERVE_LOG=${SERVE_LOG:-info}

NS_SRV=sl-srv NS_RTR=sl-rtr NS_CLI=sl-cli
SRV_IP=10.98.0.1 CLI_IP=10.98.0.2
PORT=8080 ECHO_PORT=9000

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, tc, packet sockets)"
require_tools go ffmpeg ip tc nstat curl timeout
[[ $REPS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] || die "REPS and DURATION must be positive integers"
for m in $MODES; do
	case $m in unpaced | client | server | cmcd | dashjs) ;; *) die "unknown mode $m" ;; esac
done
for b in $BUFFERS; do
	case $b in shallow | deep) ;; *) die "unknown buffer $b (shallow or deep)" ;; esac
done
for n in $NS_SRV $NS_RTR $NS_CLI; do
	if ip netns list | grep -qw "$n"; then
		die "network namespace $n exists (another run, or a crashed one: ip netns del $n)"
	fi
done

WORK=$(mktemp -d /tmp/sluice-pacing.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
# log, die, start_bg, stop_pid and forget_pid come from lib.sh; this
# script's cleanup also removes its network namespaces and keeps OUT.

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p n
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	for n in $NS_SRV $NS_RTR $NS_CLI; do ip netns del "$n" 2>/dev/null || true; done
	if [[ $KEEP == 1 ]]; then
		log "kept $WORK"
	else
		[[ $OUT == "$WORK"/* ]] || rm -rf "$WORK"
		[[ $OUT == "$WORK"/* ]] && log "results in $OUT (work directory kept with them)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Commands, not functions: a background `ip netns exec` execs its command, so
# the pid we keep is the program's own and stopping it leaves no orphan.
IN_SRV=(ip netns exec "$NS_SRV")
IN_RTR=(ip netns exec "$NS_RTR")
IN_CLI=(ip netns exec "$NS_CLI")
# The competing flow's two ends run at real-time priority (when chrt exists)
# so that other load on the machine does not show up as network delay.
# GOGC=off: a garbage collection pause in a probe end would count as delay.
RT=(env GOGC=off)
command -v chrt >/dev/null && RT+=(chrt -f 30)
in_srv() { "${IN_SRV[@]}" "$@"; }
in_rtr() { "${IN_RTR[@]}" "$@"; }
in_cli() { "${IN_CLI[@]}" "$@"; }

# ---------------------------------------------------------------- build
SRC=$REPO
# (CC is this script's congestion-control knob; go build would take it for
# the C compiler, hence env -u CC.)
if [[ -n $SLUICE_REV ]]; then
	rev=$(git -C "$REPO" rev-parse --short "$SLUICE_REV^{commit}") || die "no git revision $SLUICE_REV"
	log "building at commit $rev (git archive)"
	mkdir -p "$WORK/src"
	git -C "$REPO" archive "$rev" | tar -x -C "$WORK/src" || die "git archive $rev failed"
	SRC=$WORK/src
else
	log "building from the work tree"
fi
if [[ -n $SLUICE_BIN ]]; then
	cp "$SLUICE_BIN" "$WORK/sluice"
else
	(cd "$SRC" && env -u CC go build -o "$WORK/sluice" ./cmd/sluice) ||
		die "go build ./cmd/sluice failed (a tree in mid-edit? SLUICE_REV=HEAD builds the last commit)"
fi
(cd "$SRC" && env -u CC go build -o "$WORK/pacebench" ./bench/pacebench) || die "go build ./bench/pacebench failed"
SLUICE=$WORK/sluice PB=$WORK/pacebench
# (Not `-h | grep -q`: with pipefail, grep's early exit can fail the pipe.)
help=$("$SLUICE" serve -h 2>&1 || true)
[[ $help == *-pacing* ]] || die "this sluice has no 'serve --pacing' flag (server side not built in)"
help=$("$SLUICE" play -h 2>&1 || true)
[[ $help == *-pacing-log* ]] || die "this sluice has no 'play --pacing-log' flag"

# ---------------------------------------------------------------- media
# One MP4 with every rendition (same 2 s GOP, CBR with a tight VBV so each
# fragment's size is close to bitrate x duration) and AAC audio. testsrc2
# with temporal noise, so that the encoder really spends the bits.
read -r -a RATES <<<"$LADDER"
log "encoding 20 s of ${#RATES[@]} renditions ($LADDER) with ffmpeg"
sizes=(1280x720 960x540 640x360 480x270 320x180)
filter="[0:v]noise=alls=12:allf=t,split=${#RATES[@]}"
for i in "${!RATES[@]}"; do filter+="[v$i]"; done
filter+=";"
maps=() encs=()
for i in "${!RATES[@]}"; do
	filter+="[v$i]scale=${sizes[$i]}[o$i];"
	maps+=(-map "[o$i]")
	r=${RATES[$i]}
	encs+=("-b:v:$i" "$r" "-minrate:v:$i" "$r" "-maxrate:v:$i" "$r" "-bufsize:v:$i" "$r")
done
ffmpeg -nostdin -hide_banner -loglevel error -y \
	-f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 \
	-filter_complex "${filter%;}" "${maps[@]}" -map 1:a \
	-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g $((FRAG * 25)) -keyint_min $((FRAG * 25)) -sc_threshold 0 \
	"${encs[@]}" -x264-params nal-hrd=cbr -c:a aac -b:a 128k -movflags +faststart "$WORK/media.mp4" ||
	die "ffmpeg failed"

# ---------------------------------------------------------------- testbed
log "network namespaces $NS_SRV, $NS_RTR, $NS_CLI"
for n in $NS_SRV $NS_RTR $NS_CLI; do
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add s0 netns $NS_SRV type veth peer name r0 netns $NS_RTR
ip link add c0 netns $NS_CLI type veth peer name r1 netns $NS_RTR
ip -n $NS_SRV addr add $SRV_IP/24 dev s0
ip -n $NS_CLI addr add $CLI_IP/24 dev c0
ip -n $NS_SRV link set s0 up
ip -n $NS_CLI link set c0 up
ip -n $NS_RTR link set r0 up promisc on
ip -n $NS_RTR link set r1 up promisc on
in_srv sysctl -qw net.ipv4.tcp_congestion_control="$CC" || die "congestion control $CC not available"
start_bg "$WORK/delay.log" "${IN_RTR[@]}" "$PB" delay -a r0 -b r1 -delay "$DELAY" -stalls "$OUT/delay-stalls.txt"
DELAY_PID=$BG_PID
start_bg "$WORK/echo.log" "${IN_SRV[@]}" "${RT[@]}" "$PB" echo -listen "$SRV_IP:$ECHO_PORT" -duration 3h
sleep 0.5
kill -0 "$DELAY_PID" 2>/dev/null || { cat "$WORK/delay.log" >&2; die "delay line did not start"; }
in_cli "${RT[@]}" "$PB" ping -addr "$SRV_IP:$ECHO_PORT" -duration 2s -out "$WORK/check.txt" ||
	die "no path from $NS_CLI to $NS_SRV"
log "idle RTT p50: $(sort -n -k2 "$WORK/check.txt" | awk '{a[NR]=$2} END {printf "%.2f ms", a[int((NR+1)/2)]/1e6}')"

set_tbf() { # limit in bytes: a fresh qdisc (fresh counters)
	in_rtr tc qdisc del dev r1 root 2>/dev/null || true
	in_rtr tc qdisc add dev r1 root tbf rate "$RATE" burst 15000 limit "$1"
}

wait_manifest() { # until the live channel has fragments, then 4 more periods (bounded)
	local i
	for ((i = 0; i < 60; i++)); do
		if in_srv curl -s -m 2 "http://127.0.0.1:$PORT/live.isml/manifest.mpd" 2>/dev/null | grep -q '<S '; then
			sleep $((4 * FRAG))
			return 0
		fi
		sleep 0.5
	done
	return 1
}

run_one() { # buffer mode rep
	local buffer=$1 mode=$2 rep=$3 limit srv_mode play_mode dir
	limit=$SHALLOW
	[[ $buffer == deep ]] && limit=$DEEP
	case $mode in
	unpaced) srv_mode=off play_mode=off ;;
	client) srv_mode=client play_mode=spec ;;
	cmcd) srv_mode=client play_mode=cmcd ;;
	dashjs) srv_mode=client play_mode=dashjs ;;
	server) srv_mode=server play_mode=off ;;
	esac
	dir=$OUT/${buffer}_${mode}_r$rep
	mkdir -p "$dir"
	log "run $buffer ($limit B) / $mode (origin --pacing $srv_mode, player --pacing $play_mode), rep $rep"
	set_tbf "$limit"
	rm -rf "$WORK/data"
	start_bg "$dir/serve.log" "${IN_SRV[@]}" "$SLUICE" serve --no-demo --listen "0.0.0.0:$PORT" --data "$WORK/data" \
		--pacing "$srv_mode" --log-level "$SERVE_LOG"
	local srv=$BG_PID
	sleep 1
	start_bg "$dir/push.log" "${IN_SRV[@]}" "$SLUICE" push --quiet --loop "$WORK/media.mp4" \
		"http://127.0.0.1:$PORT/live.isml/Streams(live)"
	local push=$BG_PID
	if ! wait_manifest; then
		tail -5 "$dir/serve.log" "$dir/push.log" >&2
		die "the live channel did not come up"
	fi
	# Idle RTT of the competing flow, then the measured run.
	in_cli "${RT[@]}" "$PB" ping -addr "$SRV_IP:$ECHO_PORT" -duration 3s -out "$dir/base.txt"
	in_srv nstat -asz >"$dir/nstat.before"
	start_bg "$dir/ping.log" "${IN_CLI[@]}" "${RT[@]}" "$PB" ping -addr "$SRV_IP:$ECHO_PORT" -duration "$((DURATION + 2))s" -out "$dir/ping.txt"
	local ping=$BG_PID
	# Retransmission counters every 0.5 s, so that the table can tell the
	# steady state from the (deliberately unpaced) startup.
	start_bg "$dir/nstat.log" bash -c 'for ((i = 0; i < 2 * ($2 + 2); i++)); do
		printf "%s " "$(date +%s%N)"
		ip netns exec "$1" nstat -asz TcpRetransSegs TcpOutSegs | awk "{v[\$1]=\$2} END {print v[\"TcpRetransSegs\"]+0, v[\"TcpOutSegs\"]+0}"
		sleep 0.5
	done >"$3"' _ "$NS_SRV" "$DURATION" "$dir/nstat.series"
	local sampler=$BG_PID
	local rc=0
	in_cli timeout $((DURATION + 30)) "$SLUICE" play --json --pacing "$play_mode" --pacing-log \
		--rate-multiplier "$MULT" --burst "$BURST" --min-buffer "$MIN_BUFFER" --buffer "$PLAYER_BUFFER" \
		--duration "${DURATION}s" "http://$SRV_IP:$PORT/live.isml/manifest.mpd" >"$dir/play.json" 2>"$dir/play.log" || rc=$?
	in_srv nstat -asz >"$dir/nstat.after"
	in_rtr tc -s qdisc show dev r1 >"$dir/tc.txt"
	wait "$ping" || true
	forget_pid "$ping"
	stop_pid "$sampler"
	forget_pid "$sampler"
	for p in "$push" "$srv"; do
		stop_pid "$p"
		forget_pid "$p"
	done
	[[ $rc -eq 0 ]] || log "  player exited with $rc: $(tail -1 "$dir/play.log")"
	log "  $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=r.get("pacing") or {}; print("stalls", r["stalls"], "avg bitrate %.1f Mbit/s" % (r["avg_bitrate"]/1e6), "paced", p.get("paced"), "applied p50", (p.get("applied_kbps") or {}).get("p50"), "kbit/s")' "$dir/play.json" 2>/dev/null || echo "(no report)")"
}

for ((rep = 1; rep <= REPS; rep++)); do
	for buffer in $BUFFERS; do
		for mode in $MODES; do
			run_one "$buffer" "$mode" "$rep"
		done
	done
done

stop_pid "$DELAY_PID"
forget_pid "$DELAY_PID"
log "delay line: $(tail -2 "$WORK/delay.log" | tr '\n' ' ')"
echo
echo "Pacing benchmark: tbf $RATE (shallow $SHALLOW B, deep $DEEP B), RTT 2x$DELAY, server CC $CC,"
echo "ladder $LADDER (${FRAG} s fragments), ${DURATION} s per run, player --rate-multiplier $MULT --burst $BURST"
echo "--buffer $PLAYER_BUFFER --min-buffer $MIN_BUFFER; kernel $(uname -r), $(nproc) CPUs."
echo
"$PB" table -dir "$OUT"
