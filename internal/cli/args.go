package cli

import (
	"flag"
	"strings"
)

// Reorder moves the positional arguments in args after the flags, so that
// "peer play film --origin U" parses like "peer play --origin U film" (Go's
// flag package stops at the first positional argument). A flag's value is
// never taken for a positional argument: flags that are not booleans take
// the next argument unless written -name=value. Everything after "--" stays
// positional, in order. Unknown flags are left in place for fs.Parse to
// report.
func Reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || isBool(f) {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
