// Package segment turns clear video into standard Common Encryption (CENC)
// CMAF, and proves later that every byte of it is what the packager wrote.
//
// It has four entry points:
//
//   - [Pack] reads progressive MP4 files (one per rendition: H.264 avc1 or
//     HEVC video, AAC audio) or the HLS playlist or static DASH MPD of a
//     clear fMP4 ladder, cuts every track at the same keyframes (a ladder
//     keeps its video cuts; audio cut elsewhere is re-cut to match), encrypts each sample with the
//     'cbcs' (default) or 'cenc' scheme, and writes one folder per track,
//     HLS and DASH playlists, and a signed segment manifest.
//   - [Import] writes and signs the manifest for content another packager
//     already encrypted.
//   - [ParseManifest] verifies a manifest's Ed25519 signature against trusted
//     keys and only then decodes it; [Manifest.CheckFile] checks one file's
//     bytes (size and SHA-256) against it.
//   - [Decryptor] turns an init segment and media segments back into clear
//     CMAF in memory, for the player SDK.
//
// Every HLS playlist sealmesh reads or writes goes through [ParseHLS] and
// [HLSMultivariant.Encode] / [HLSMedia.Encode]; DASH MPDs are written and
// read with github.com/Eyevinn/dash-mpd. The MPD carries the mp4protection
// (default_KID) and DASH-IF Clear Key (dashif:Laurl) descriptors; the W3C
// common PSSH is in the init segments only, where dash.js 5 can use it.
//
// # Output layout
//
//	<out>/master.m3u8        HLS multivariant playlist
//	<out>/manifest.mpd       DASH MPD, one Period per crypto period
//	<out>/sealmesh.json      signed segment manifest
//	<out>/<track>/init.mp4   init segment of crypto period 0
//	<out>/<track>/init-N.mp4 init segment of crypto period N (key rotation)
//	<out>/<track>/index.m3u8 HLS media playlist
//	<out>/<track>/K.m4s      media segments, K = 1, 2, ...
//
// Tracks are named video-WxH and audio (audio-LANG for a tagged language).
// The output is built in a hidden folder beside <out> and renamed into place
// when complete; a failed or interrupted run leaves nothing.
//
// # Encryption
//
// Init segments carry a 'tenc' box with the period's KID as default KID and a
// Common System ID (1077efec-c0b2-4d02-ace3-3c1e52e2fb4b) version-1 PSSH that
// lists it. With 'cbcs' video uses the 1:9 pattern and audio whole-block
// encryption, with one random constant IV per key. With 'cenc' (AES-CTR)
// video uses subsample encryption that keeps NAL headers clear, and samples
// get 8-byte IVs whose first byte is the track index and whose rest counts
// up from a random start, so no IV repeats under a key.
//
// # Key rotation
//
// With [Config.CryptoPeriod] set, the segment that starts at or after each
// multiple of the period opens a new crypto period with its own key and KID.
// Each period has its own init segment (init-N.mp4) whose tenc names the new
// KID. This is signalled as a new DASH Period per crypto period (Shaka Player
// and dash.js switch keys at the boundary) and as a new EXT-X-KEY plus
// EXT-X-MAP pair in HLS. In-band 'seig' sample groups are not used: ffmpeg
// 5.1 ignores them, while a per-period init works for ffmpeg per-segment
// decryption (cat init-N.mp4 K.m4s | ffmpeg -decryption_key ...) and for
// players alike.
//
// # Keys
//
// This package never stores or generates keys: the caller hands Pack a
// [KeySource] and an Ed25519 [crypto.Signer] (see package keys). [Key]
// prints its KID only.
//
// # Integrity
//
// CENC has no integrity of its own: a flipped ciphertext bit decrypts to
// garbage that decoders may accept. The manifest lists every file's size and
// SHA-256 and is signed over its exact bytes (no canonical JSON), with a
// context string that keeps its signatures apart from any other signature
// made with the same key. Paths in a manifest are clean relative paths, so a
// peer may use them as cache file names. Pack refuses to sign output in which
// a media segment has no encrypted byte, unless the clear lead covers it.
//
// # Compatibility
//
// Manifest version 1 is read and written; a later version will keep reading
// version 1. Output is checked against ffmpeg, shaka-packager, Shaka Player,
// hls.js and dash.js 4 and 5 in Chromium by ./scripts/test.
package segment
