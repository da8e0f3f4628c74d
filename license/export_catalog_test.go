package license

import "time"

// SetCatalogClock replaces a DirCatalog's clock (rescans follow it).
func SetCatalogClock(c *DirCatalog, now func() time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
}
