// Package interop drives the real programs that sealmesh must interoperate with, for
// tests in other packages: ffmpeg (per-segment CENC decryption and frame hashes),
// shaka-packager (an independent encryptor and decryptor), and Shaka Player, hls.js and
// dash.js (4.7 and 5) in headless Chromium with EME Clear Key.
//
// It is a test kit: every entry point takes a testing.TB and reports problems through it.
//
// # Finding the programs
//
// Each tool is looked up from an environment variable first, then from the places
// ./scripts/test installs it to:
//
//	SEALMESH_FFMPEG           ffmpeg binary            (else "ffmpeg" on PATH)
//	SEALMESH_SHAKA_PACKAGER   shaka-packager binary    (else scripts/node/node_modules/shaka-packager/bin/packager-OS-ARCH)
//	SEALMESH_CHROMIUM         Chromium binary          (else /usr/bin/chromium, then chromium on PATH)
//	SEALMESH_NODE_DIR         the pinned npm workspace (else scripts/node, with node_modules installed)
//
// Repo-relative paths are found by walking up from the test's working directory to the
// directory that holds go.mod.
//
// When a tool is missing the test is skipped, naming the variable and ./scripts/test,
// unless SEALMESH_INTEROP=1: then the test fails, so that CI (which runs ./scripts/test
// and sets it) can never pass by skipping.
//
// # Entry points
//
//   - [FFmpeg], [ShakaPackager], [Chromium], [NodeDir]: locate the tools.
//   - [FrameMD5] / [FrameMD5File]: decode (and decrypt, given a key) with ffmpeg and
//     return one MD5 per decoded frame, to compare with the clear source.
//   - [ShakaEncrypt] / [ShakaDecrypt]: package or decrypt with shaka-packager.
//   - [PlayInChromium] with [PlayerPage] (any [Player], optionally with a bearer token),
//     [ShakaPlayerPage] or [HlsJsPage]: play a stream in Chromium and report how far it
//     got; [ClearKeyHandler] is a W3C Clear Key license endpoint those pages can talk
//     to, and [PlayerAssets] serves the player scripts.
//
// # Keys
//
// Keys and KIDs are passed as 32-digit hex strings (or raw bytes for [ClearKeyHandler]).
// They are test keys: this package puts them on command lines and in logs freely, which
// production code must never do.
package interop
