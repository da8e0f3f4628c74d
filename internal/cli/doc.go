// Package cli holds what sealmesh's commands (cmd/sealmesh and
// cmd/sealmesh-bench) share: the logging flags (--log-level, --log-format,
// --verbose), the argument order fix that lets positional arguments come
// before or after flags, and the version read from the build information.
//
// Nothing here logs or prints a secret: the loggers it builds are handed to
// components that never log key material or tokens.
package cli
