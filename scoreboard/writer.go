package scoreboard

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Map maps slot idx of the scoreboard memfd fd, which a worker inherited
// from the arbiter. It does not mark the slot started (Started does).
func Map(fd, idx int) (Slot, error) {
	unix.CloseOnExec(fd) // keep it from whatever the application execs
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Slot{}, fmt.Errorf("scoreboard: fstat fd %d: %w", fd, err)
	}
	n := int(st.Size) / SlotSize
	if idx < 0 || idx >= n {
		return Slot{}, fmt.Errorf("scoreboard: slot %d beyond %d slots", idx, n)
	}
	b, err := mapFile(os.NewFile(uintptr(fd), "scoreboard"), n)
	if err != nil {
		return Slot{}, err
	}
	return b.Slot(idx), nil
}

// Started marks the slot's worker as running and idle.
func (s Slot) Started(pid int) {
	if s.w == nil {
		return
	}
	atomic.StoreUint64(&s.w[wPID], uint64(pid))
	atomic.StoreUint64(&s.w[wBoot], uint64(time.Now().UnixNano()))
	atomic.StoreUint64(&s.w[wState], uint64(StateIdle))
}

// SetState records the worker's lifecycle state. While it is idle (or
// handling), the state readers see is derived from the counters (see
// Info): classes report connections and reading through ConnOpened,
// ConnClosed, ReadingStarted and ReadingDone, not through SetState.
func (s Slot) SetState(st State) {
	if s.w != nil {
		atomic.StoreUint64(&s.w[wState], uint64(st))
	}
}

// ConnOpened and ConnClosed count open connections (h1.ConnObserver).
func (s Slot) ConnOpened() { s.add(wConns, 1) }

// ConnClosed: see ConnOpened.
func (s Slot) ConnClosed() { s.add(wConns, ^uint64(0)) }

// ReadingStarted and ReadingDone count connections reading a request head
// (h1.ConnObserver).
func (s Slot) ReadingStarted() { s.add(wReading, 1) }

// ReadingDone: see ReadingStarted.
func (s Slot) ReadingDone() { s.add(wReading, ^uint64(0)) }

// add adds d to word i (^uint64(0) subtracts one); the zero Slot ignores it.
func (s Slot) add(i int, d uint64) {
	if s.w != nil {
		atomic.AddUint64(&s.w[i], d)
	}
}

// Begin records a request entering its handler: requests begun +1 (in
// flight derives from it, see Info), queue time, and the request block
// (when no other writer holds it). It returns the start stamp to pass to
// End.
//
// Cost: this and End are the scoreboard's whole per-request path (see
// workers' BenchmarkSlotMeterOnly), so they use the fewest locked instructions
// that keep the counters exact: one add here and four in End (requests
// and in flight are derived rather than counted), one CAS and one atomic
// store for the block, whose words are plain stores inside the seqlock
// (storeWord) and are skipped when unchanged (a keep-alive client's
// method, path and address repeat).
func (s Slot) Begin(method, path, client string, queue time.Duration) int64 {
	now := monoNow()
	if s.w == nil {
		return now
	}
	atomic.AddUint64(&s.w[wBegun], 1)
	if queue > 0 {
		atomic.AddUint64(&s.w[wQSum], uint64(queue))
		atomic.AddUint64(&s.w[wQCount], 1)
		atomic.AddUint64(&s.w[wQBucket+bucket(int64(queue))], 1)
	}
	seq := atomic.LoadUint64(&s.w[wSeq])
	if seq&1 == 0 && atomic.CompareAndSwapUint64(&s.w[wSeq], seq, seq+1) {
		storeWord(&s.w[wStart], uint64(now))
		s.writeString(wMethod, methodLen, method)
		s.writeString(wClient, clientLen, client)
		s.writeString(wPath, pathLen, path)
		atomic.StoreUint64(&s.w[wSeq], seq+2) // publish
	}
	return now
}

// End records a finished request started at start (Begin's result), with
// its status code and body bytes. The latency bucket is added last: it
// is what counts the request as finished (Requests, in flight), so a
// reader that sees it counted also sees its status and bytes.
func (s Slot) End(start int64, status int, bytes int64) {
	if s.w == nil {
		return
	}
	d := monoNow() - start
	if bytes != 0 {
		atomic.AddUint64(&s.w[wBytes], uint64(bytes))
	}
	if c := status/100 - 1; c >= 0 && c < 5 {
		atomic.AddUint64(&s.w[wStatus+c], 1)
	}
	atomic.AddUint64(&s.w[wLatSum], uint64(d))
	atomic.AddUint64(&s.w[wLatBucket+bucket(d)], 1)
}

// bucket is the index of the histogram bucket for d ns.
func bucket(d int64) int {
	for i, b := range bucketNs {
		if d <= b {
			return i
		}
	}
	return nBuckets - 1
}

// writeString stores v, truncated to n bytes, 8 bytes per word, inside
// the seqlock. It covers only the words v needs plus its NUL terminator
// (readers stop at the first NUL), and stores a word only when it
// changes: the writer holds the seqlock, so reading its own words back is
// exact.
func (s Slot) writeString(word, n int, v string) {
	if len(v) > n {
		v = v[:n]
	}
	words := min(len(v)/8+1, n/8)
	for i := 0; i < words; i++ {
		x := wordAt(v, i*8)
		if p := &s.w[word+i]; *p != x {
			storeWord(p, x)
		}
	}
}

// wordAt packs v[off:off+8] little-endian, zero past the end of v.
func wordAt(v string, off int) uint64 {
	if off+8 <= len(v) {
		return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(v[off:]), 8))
	}
	var x uint64
	for j := len(v) - 1; j >= off; j-- {
		x = x<<8 | uint64(v[j])
	}
	return x
}
