#!/bin/sh
# Regenerates the codec fixtures: the init segment (ftyp+moov) of a short
# fragmented MP4 per codec, as Debian's ffmpeg writes it. Run from this
# directory; the files are kept small (only the header is stored).
set -e
V="-f lavfi -i testsrc2=s=160x96:r=25:d=0.4"
A="-f lavfi -i sine=f=440:r=48000:d=0.4"
F="-f mp4 -movflags frag_keyframe+empty_moov+default_base_moof+delay_moov"
export SVT_LOG=1
init() { # out, ffmpeg args...
	out=$1; shift
	ffmpeg -hide_banner -loglevel error -y "$@" $F tmp.mp4
	# keep ftyp+moov only
	python3 - tmp.mp4 "$out" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
o = b''; i = 0
while i < len(d):
    n, t = struct.unpack('>I4s', d[i:i+8])
    if t in (b'ftyp', b'moov'): o += d[i:i+n]
    i += n
open(sys.argv[2], 'wb').write(o)
PY
	rm -f tmp.mp4
}
init hvc1.mp4 $V -c:v libx265 -x265-params log-level=none -tag:v hvc1
init hev1.mp4 $V -c:v libx265 -x265-params log-level=none -tag:v hev1
init hvc1_pq.mp4 $V -pix_fmt yuv420p10le -c:v libx265 -x265-params log-level=none:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -tag:v hvc1
init hvc1_hlg.mp4 $V -pix_fmt yuv420p10le -c:v libx265 -x265-params log-level=none:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc -color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc -tag:v hvc1
init av01.mp4 $V -c:v libsvtav1 -preset 12
init av01_pq.mp4 $V -pix_fmt yuv420p10le -c:v libsvtav1 -preset 12 -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc
init opus.mp4 $A -ac 2 -c:a libopus -b:a 64k
init ac3.mp4 $A -af "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0" -c:a ac3 -b:a 384k
init ec3.mp4 $A -ac 2 -c:a eac3 -b:a 96k
init ec3_51.mp4 $A -af "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0" -c:a eac3 -b:a 256k
