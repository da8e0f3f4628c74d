package segment

import (
	"os"
	"syscall"
	"time"
)

// readDecoys returns the files whose access time moved since resetATimes.
func readDecoys(files []string) []string {
	var read []string
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && time.Unix(st.Atim.Unix()).After(decoyATime) {
			read = append(read, p)
		}
	}
	return read
}
