#!/bin/sh
# make-sample.sh builds testdata/sample/sample.mp4, the demo file that
# `sluice serve`, `sluice push` and `sluice import` use and that the tests read.
#
# A 12 s generated test pattern (Debian's ffmpeg, libx264 and the native AAC
# encoder), progressive MP4 with the moov first (+faststart):
#   track 1: H.264 640x360, 25 fps, ~600 kbit/s  (testsrc2)
#   track 2: H.264 320x180, 25 fps, ~200 kbit/s  (the same picture, scaled)
#   track 3: AAC-LC 48 kHz stereo, ~64 kbit/s    (1 kHz / 1.5 kHz sine)
# Both video tracks have a closed GOP of exactly 2 s (-g 50 -keyint_min 50
# -sc_threshold 0), so their key frames line up and every track can be cut
# into 2 s fragments at the same times.
#
# Usage: scripts/make-sample.sh [output.mp4]
set -eu

cd "$(dirname "$0")/.."
out=${1:-testdata/sample/sample.mp4}
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.mp4"
trap 'rm -f "$tmp"' EXIT

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=12" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000:duration=12" \
  -f lavfi -i "sine=frequency=1500:sample_rate=48000:duration=12" \
  -filter_complex "[0:v]format=yuv420p,split=2[hi][lo0];[lo0]scale=320:180[lo];[1:a][2:a]join=inputs=2:channel_layout=stereo[a]" \
  -map "[hi]" -map "[lo]" -map "[a]" \
  -c:v libx264 -preset medium -profile:v main -threads 1 \
  -g 50 -keyint_min 50 -sc_threshold 0 \
  -b:v:0 600k -maxrate:v:0 720k -bufsize:v:0 1200k \
  -b:v:1 200k -maxrate:v:1 240k -bufsize:v:1 400k \
  -c:a aac -b:a 64k -ar 48000 -ac 2 \
  -t 12 -map_metadata -1 -fflags +bitexact -flags:v +cgop+bitexact -flags:a +bitexact \
  -metadata:s:a:0 language=eng \
  -movflags +faststart \
  "$tmp"

size=$(wc -c <"$tmp")
if [ "$size" -ge 2097152 ]; then
  echo "make-sample: $out is $size bytes, expected under 2 MB" >&2
  exit 1
fi
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out ($size bytes)"
