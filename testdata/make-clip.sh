#!/usr/bin/env bash
# make-clip.sh: regenerate the small synthetic test clip committed under testdata/clip/.
#
#   testdata/make-clip.sh            # writes testdata/clip/360p.mp4 and testdata/clip/180p.mp4
#   FFMPEG=/path/to/ffmpeg testdata/make-clip.sh
#
# Both renditions are 12 s progressive MP4s of the same synthetic source:
#   video  testsrc2 (moving pattern + frame counter, so every frame differs), H.264 High,
#          yuv420p, 24 fps, one IDR every 2 s exactly (48 frames, no scene-cut keyframes),
#          avc1 with SPS/PPS in avcC (libx264's default in MP4)
#   audio  AAC-LC, stereo, 48 kHz, 64 kbit/s, a tone that rises each second (left) against
#          a slow chirp (right), so decoded audio differs from segment to segment; no
#          perceptual noise substitution (-aac_pns 0): PNS noise depends on decoder state,
#          so a segment decoded on its own would never hash like the same frames in the whole
# The flags aim for byte-identical output from one ffmpeg/x264 build to the next run
# (bitexact muxing, one encoder thread); a different ffmpeg or x264 version may still
# produce different bytes, which is fine: tests compare decoded frames, not file hashes.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${here}/clip"
ffmpeg="${FFMPEG:-${SEALMESH_FFMPEG:-ffmpeg}}"
seconds=12

mkdir -p "$out"

# encode SIZE VIDEO_BITRATE OUTFILE
encode() {
	local size="$1" vbr="$2" dst="$3"
	"$ffmpeg" -hide_banner -nostdin -loglevel error -y \
		-f lavfi -i "testsrc2=size=${size}:rate=24:duration=${seconds}" \
		-f lavfi -i "aevalsrc=exprs='0.25*sin(2*PI*(330+55*floor(t))*t)|0.25*sin(2*PI*(220+20*t)*t)':sample_rate=48000:channel_layout=stereo:duration=${seconds}" \
		-map 0:v:0 -map 1:a:0 \
		-c:v libx264 -profile:v high -pix_fmt yuv420p -r 24 \
		-b:v "$vbr" -maxrate "$vbr" -bufsize "$vbr" \
		-g 48 -keyint_min 48 -sc_threshold 0 -threads 1 \
		-c:a aac -profile:a aac_low -aac_pns 0 -b:a 64k -ar 48000 -ac 2 \
		-fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
		-map_metadata -1 -metadata:s:v:0 language=und -metadata:s:a:0 language=und \
		-movflags +faststart \
		-t "$seconds" \
		"$dst"
}

encode 640x360 400k "${out}/360p.mp4"
encode 320x180 150k "${out}/180p.mp4"

ls -l "${out}/360p.mp4" "${out}/180p.mp4"
