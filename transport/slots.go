package transport

import "sync"

// keyedSlots bounds how many of something each key may hold at once (a
// peer's, or an account's, inbound segment streams). Safe for concurrent
// use; the map holds only keys with a slot taken.
type keyedSlots struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newKeyedSlots(max int) *keyedSlots { return &keyedSlots{max: max, n: make(map[string]int)} }

// acquire takes one of key's slots, without waiting.
func (k *keyedSlots) acquire(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n[key] >= k.max {
		return false
	}
	k.n[key]++
	return true
}

func (k *keyedSlots) release(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n[key] <= 1 {
		delete(k.n, key)
	} else {
		k.n[key]--
	}
}
