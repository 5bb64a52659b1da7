package scoreboard

// storeWord writes a word of the seqlock-protected request block. On amd64
// (x86-TSO) stores become visible in program order and the Go compiler
// keeps stores in program order around the CAS that took the sequence odd
// and the atomic store that publishes it even, so a plain store is enough:
// a locked XCHG (atomic.StoreUint64) per word would cost a full barrier.
// Words are 8-byte aligned, so readers never see half of one.
func storeWord(p *uint64, v uint64) { *p = v }
