#!/usr/bin/env bash
# make-long-clip.sh: make a longer synthetic clip for benchmarks, at run time (not committed).
#
#   testdata/make-long-clip.sh OUT.mp4 [seconds=60] [WxH=1280x720] [video-kbit]
#
# Same shape as make-clip.sh (H.264 High yuv420p 24 fps, IDR every 2 s exactly,
# AAC-LC stereo 48 kHz 64 kbit/s, faststart), sized for throughput benchmarks.
# The video bitrate scales with the picture: about 0.1 bit per pixel per frame,
# unless video-kbit sets it (the swarm benchmark's ladder: 640x360 900, 320x180 300).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 4 ]]; then
	echo "usage: $0 OUT.mp4 [seconds=60] [WxH=1280x720] [video-kbit]" >&2
	exit 2
fi
dst="$1"
seconds="${2:-60}"
size="${3:-1280x720}"
ffmpeg="${FFMPEG:-${SEALMESH_FFMPEG:-ffmpeg}}"

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
	echo "make-long-clip: seconds must be a positive integer, got '$seconds'" >&2
	exit 2
fi
if ! [[ "$size" =~ ^([0-9]+)x([0-9]+)$ ]]; then
	echo "make-long-clip: size must look like 1280x720, got '$size'" >&2
	exit 2
fi
w="${BASH_REMATCH[1]}" h="${BASH_REMATCH[2]}"
vbr=$(( w * h * 24 / 10 / 1000 ))k
if [[ $# -ge 4 ]]; then
	if ! [[ "$4" =~ ^[0-9]+$ ]] || (( $4 < 16 )); then
		echo "make-long-clip: video-kbit must be an integer of 16 or more, got '$4'" >&2
		exit 2
	fi
	vbr="${4}k"
fi

mkdir -p "$(dirname "$dst")"
"$ffmpeg" -hide_banner -nostdin -loglevel error -y \
	-f lavfi -i "testsrc2=size=${size}:rate=24:duration=${seconds}" \
	-f lavfi -i "aevalsrc=exprs='0.25*sin(2*PI*(330+55*mod(floor(t),12))*t)|0.25*sin(2*PI*(220+20*mod(t,12))*t)':sample_rate=48000:channel_layout=stereo:duration=${seconds}" \
	-map 0:v:0 -map 1:a:0 \
	-c:v libx264 -profile:v high -pix_fmt yuv420p -r 24 -preset veryfast \
	-b:v "$vbr" -maxrate "$vbr" -bufsize "$vbr" \
	-g 48 -keyint_min 48 -sc_threshold 0 \
	-c:a aac -profile:a aac_low -aac_pns 0 -b:a 64k -ar 48000 -ac 2 \
	-fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
	-map_metadata -1 -movflags +faststart \
	-t "$seconds" \
	"$dst"
ls -l "$dst"
