package cache

import "container/list"

// lru is the recency index both caches share: a list of entries, most
// recently used at the front, and the bytes they add up to. It is not safe
// for concurrent use; its owner holds a lock around it.
type lru struct {
	ll   list.List // of *entry; front: most recently used
	m    map[string]*list.Element
	size int64
	gen  uint64 // bumped on every add, so a stale reader can tell its entry was replaced
}

type entry struct {
	path string
	size int64
	gen  uint64
	data []byte // Mem only
}

func (l *lru) init() { l.m = make(map[string]*list.Element) }

func (l *lru) get(path string) (*entry, bool) {
	el, ok := l.m[path]
	if !ok {
		return nil, false
	}
	return el.Value.(*entry), true
}

// touch marks path as just used.
func (l *lru) touch(path string) {
	if el, ok := l.m[path]; ok {
		l.ll.MoveToFront(el)
	}
}

// add inserts a new most-recently-used entry; path must not be present.
func (l *lru) add(e *entry) {
	l.gen++
	e.gen = l.gen
	l.m[e.path] = l.ll.PushFront(e)
	l.size += e.size
}

// addOldest inserts an entry as the least recently used one (Open uses it to
// rebuild the order from mtimes, newest first).
func (l *lru) addOldest(e *entry) {
	l.gen++
	e.gen = l.gen
	l.m[e.path] = l.ll.PushBack(e)
	l.size += e.size
}

func (l *lru) remove(path string) {
	if el, ok := l.m[path]; ok {
		l.size -= el.Value.(*entry).size
		l.ll.Remove(el)
		delete(l.m, path)
	}
}

// oldest returns the least recently used entry.
func (l *lru) oldest() (*entry, bool) {
	el := l.ll.Back()
	if el == nil {
		return nil, false
	}
	return el.Value.(*entry), true
}

func (l *lru) len() int { return len(l.m) }

// paths lists the cached paths, least recently used first.
func (l *lru) paths() []string {
	out := make([]string, 0, len(l.m))
	for el := l.ll.Back(); el != nil; el = el.Prev() {
		out = append(out, el.Value.(*entry).path)
	}
	return out
}
