//go:build !amd64

package scoreboard

import "sync/atomic"

// storeWord writes a word of the seqlock-protected request block. Weakly
// ordered CPUs may make a plain store visible before the store that took
// the sequence odd, so it is atomic there (see store_amd64.go).
func storeWord(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
