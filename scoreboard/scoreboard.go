// Package scoreboard is the shared-memory region through which workers tell
// the arbiter what they are doing, without a syscall per request.
//
// The arbiter creates one memfd (Create), maps it MAP_SHARED and passes it
// to every worker as an inherited fd; the worker's spec (proc.Spec) tells
// it which fd and which slot is its own, and it maps that slot with Map. Each slot
// is SlotSize bytes, cache-line aligned, and every field is an aligned
// 64-bit word (counters kept with atomic adds), so a reader in another
// process sees whole values. The "current request" block (start, method,
// path, client) is several words and is written seqlock-style: a writer
// takes the sequence word from even to odd with a CAS (a writer that loses
// the CAS to a concurrent request simply skips: the block shows one of the
// requests in flight), stores the words that changed (plain stores on
// amd64, see storeWord), and publishes with an atomic store of the next
// even sequence; a reader retries until it reads the same even sequence
// before and after.
//
// Requests served and in flight are derived, not counted: served is the
// sum of the latency buckets (End adds one), in flight is requests begun
// (Begin adds one) minus served. That keeps a request to five atomic adds.
//
// Capacity: Create allocates a fixed number of slots, Capacity(workers) =
// max(4*workers, 1024) (512 KiB for up to 256 workers). A HUP runs two
// generations side by side and TTIN
// adds workers, so this leaves room for both; the region is sparse (pages
// are committed on first touch), so unused slots cost no memory. A worker
// spawned when every slot is taken simply runs without one (the arbiter
// logs it); its requests are not counted.
//
// A running worker's state (handling, reading, keep-alive, idle) is not
// stored: Info derives it from the in-flight, reading and connection
// figures, which the request middleware and the engine's connection hook
// (h1.ConnObserver, implemented by Slot) keep with atomic adds. Only the
// lifecycle states (empty, booting, idle once attached) are stored.
//
// Histograms use fixed buckets (Buckets, seconds) kept as per-bucket atomic
// counters in the slot; the stats endpoint sums them into const histograms.
package scoreboard

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe" // also for go:linkname

	"golang.org/x/sys/unix"
)

// SlotSize is the size of one slot in bytes (a multiple of the cache line):
// 512 for the counters and the request block, the rest for a class's route
// table (routes.go).
const SlotSize = 2048

// State is what a worker is doing.
type State uint64

const (
	StateEmpty     State = iota // no worker in this slot
	StateBooting                // spawned, application not loaded yet
	StateIdle                   // ready, no request in flight
	StateReading                // reading a request head (classes that report it)
	StateHandling               // at least one request in its handler
	StateKeepAlive              // between requests on kept-alive connections
)

var stateNames = [...]string{"empty", "booting", "idle", "reading", "handling", "keep-alive"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint64(s))
}

// Buckets are the upper bounds (seconds) of the latency and queue-time
// histograms. A value above the last one lands in the overflow bucket.
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// bucketNs is Buckets in nanoseconds, for the per-request search.
var bucketNs = func() []int64 {
	out := make([]int64, len(Buckets))
	for i, b := range Buckets {
		out[i] = int64(b * 1e9)
	}
	return out
}()

const nBuckets = 14 // len(Buckets) + overflow

// Word offsets inside a slot (each word is 8 bytes).
const (
	wSeq       = 0
	wPID       = 1
	wState     = 2
	wUnused3   = 3 // was the requests counter: Requests is the sum of the latency buckets
	wBegun     = 4 // requests that entered their handler; in flight = begun - finished
	wBytes     = 5
	wStatus    = 6 // 5 words: 1xx..5xx
	wStart     = 11
	wConns     = 12
	wLatSum    = 13
	wLatBucket = 14 // nBuckets words
	wQSum      = 28
	wQCount    = 29
	wQBucket   = 30 // nBuckets words
	wBoot      = 44 // wall-clock ns when the worker attached
	wReading   = 45 // connections reading a request head
	wPromoted  = 46 // routes promoted to inline (auto class), set by the worker
	wDemoted   = 47 // routes demoted to the pool (auto class), set by the worker
	wMethod    = 48 // 2 words (16 bytes)
	wClient    = 50 // 6 words (48 bytes)
	wPath      = 56 // 8 words (64 bytes)
	wRejected  = 64 // len(RejectedStatuses) words: requests the engine refused, by status
	wRouteSeq  = 69 // seqlock of the route table
	wRouteLen  = 70 // its length in bytes
	wRoutes    = 71 // the route table's encoding, to the end of the slot
	nWords     = SlotSize / 8

	methodLen = 16
	clientLen = 48
	pathLen   = 64
)

// Capacity is the number of slots the arbiter allocates for a pool of
// workers (see the package doc).
func Capacity(workers int) int { return max(4*workers, 1024) }

// Board is a mapped scoreboard: the arbiter's (Create) or a worker's view
// (attach). The arbiter also keeps the counters of workers that exited
// (Retire), so totals never go backwards.
type Board struct {
	f   *os.File
	mem []byte
	n   int

	mu      sync.Mutex
	free    []int // arbiter: unassigned slot indices, sorted descending (pop = lowest)
	retired map[string]*Counters
}

// Create makes a board of n slots in a new memfd. The memfd is not
// close-on-exec-free: pass File() in exec.Cmd.ExtraFiles.
func Create(n int) (*Board, error) {
	fd, err := unix.MemfdCreate("multiserve-scoreboard", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "scoreboard")
	if err := f.Truncate(int64(n * SlotSize)); err != nil {
		f.Close()
		return nil, fmt.Errorf("scoreboard: size memfd: %w", err)
	}
	b, err := mapFile(f, n)
	if err != nil {
		f.Close()
		return nil, err
	}
	for i := n - 1; i >= 0; i-- {
		b.free = append(b.free, i)
	}
	b.retired = map[string]*Counters{}
	return b, nil
}

func mapFile(f *os.File, n int) (*Board, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, n*SlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: mmap: %w", err)
	}
	return &Board{f: f, mem: mem, n: n}, nil
}

// File is the memfd, for a worker's ExtraFiles.
func (b *Board) File() *os.File { return b.f }

// Len is the number of slots.
func (b *Board) Len() int { return b.n }

// Close unmaps the region and closes the memfd.
func (b *Board) Close() error {
	if b == nil || b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem = nil
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Slot is one worker's slot. The zero Slot (nil words) ignores writes, so a
// worker without a slot needs no special case.
type Slot struct {
	w *[nWords]uint64
}

// IsZero reports whether s is the zero Slot, which ignores every write
// (a worker without a slot).
func (s Slot) IsZero() bool { return s.w == nil }

// Slot returns slot i (0 <= i < Len()).
func (b *Board) Slot(i int) Slot {
	if i < 0 || i >= b.n {
		return Slot{}
	}
	return Slot{w: (*[nWords]uint64)(unsafe.Pointer(&b.mem[i*SlotSize]))}
}

// Assign takes the lowest free slot for a new worker with pid, zeroes it
// and marks it booting. ok is false when every slot is taken.
func (b *Board) Assign(pid int) (idx int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.free) == 0 {
		return -1, false
	}
	idx = b.free[len(b.free)-1]
	b.free = b.free[:len(b.free)-1]
	s := b.Slot(idx)
	for i := range s.w {
		atomic.StoreUint64(&s.w[i], 0)
	}
	atomic.StoreUint64(&s.w[wPID], uint64(pid))
	atomic.StoreUint64(&s.w[wState], uint64(StateBooting))
	return idx, true
}

// SetPID records the pid of the worker in slot idx once it is known (the
// arbiter assigns the slot before the fork).
func (b *Board) SetPID(idx, pid int) {
	if s := b.Slot(idx); s.w != nil {
		atomic.StoreUint64(&s.w[wPID], uint64(pid))
	}
}

// Retire folds the counters of the exited worker in slot idx into the
// totals of its class, empties the slot and frees it.
func (b *Board) Retire(idx int, class string) {
	s := b.Slot(idx)
	if s.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.retired[class]
	if c == nil {
		c = new(Counters)
		b.retired[class] = c
	}
	c.Add(s.Counters())
	for i := range s.w {
		atomic.StoreUint64(&s.w[i], 0)
	}
	b.free = append(b.free, idx)
	// Keep the lowest index at the end, so slots are reused densely.
	sort.Sort(sort.Reverse(sort.IntSlice(b.free)))
}

// Totals returns, per class, the counters of retired workers plus those of
// the live slots in live (slot index → class) whose pid matches. It holds
// the board's lock so a worker retiring meanwhile is counted once.
func (b *Board) Totals(live map[int]Owner) map[string]*Counters {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]*Counters{}
	get := func(class string) *Counters {
		if out[class] == nil {
			out[class] = new(Counters)
		}
		return out[class]
	}
	for class, c := range b.retired {
		get(class).Add(*c)
	}
	for idx, o := range live {
		s := b.Slot(idx)
		if s.w == nil || s.PID() != o.PID {
			continue
		}
		get(o.Class).Add(s.Counters())
	}
	return out
}

// Owner is the worker a slot belongs to, as the arbiter knows it.
type Owner struct {
	PID   int
	Class string
}

// Counters are a slot's cumulative counters.
type Counters struct {
	Requests   uint64
	Bytes      uint64
	Status     [5]uint64 // 1xx..5xx
	LatSumNs   uint64
	LatBuckets [nBuckets]uint64 // per bucket, not cumulative; last is overflow
	QSumNs     uint64
	QCount     uint64
	QBuckets   [nBuckets]uint64
	Promoted   uint64 // route placement changes (auto class)
	Demoted    uint64
	Rejected   [len(RejectedStatuses)]uint64 // refused requests, by RejectedStatuses
}

// RejectedStatuses are the statuses the engine refuses a request with that
// the scoreboard counts, and why; any other status counts as the first.
var RejectedStatuses = [5]struct {
	Status int
	Reason string
}{
	{400, "malformed request"}, {408, "request timeout"}, {413, "body too large"},
	{414, "request line too long"}, {431, "header fields too large"},
}

// Rejected counts a request the engine refused with status.
func (s Slot) Rejected(status int) {
	if s.w == nil {
		return
	}
	i := 0
	for j, r := range RejectedStatuses {
		if r.Status == status {
			i = j
		}
	}
	atomic.AddUint64(&s.w[wRejected+i], 1)
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Requests += o.Requests
	c.Bytes += o.Bytes
	for i := range c.Status {
		c.Status[i] += o.Status[i]
	}
	c.LatSumNs += o.LatSumNs
	c.QSumNs += o.QSumNs
	c.QCount += o.QCount
	c.Promoted += o.Promoted
	c.Demoted += o.Demoted
	for i := range c.Rejected {
		c.Rejected[i] += o.Rejected[i]
	}
	for i := range c.LatBuckets {
		c.LatBuckets[i] += o.LatBuckets[i]
		c.QBuckets[i] += o.QBuckets[i]
	}
}

// Counters reads the slot's counters.
func (s Slot) Counters() Counters {
	var c Counters
	if s.w == nil {
		return c
	}
	c.Bytes = s.load(wBytes)
	for i := range c.Status {
		c.Status[i] = s.load(wStatus + i)
	}
	c.LatSumNs = s.load(wLatSum)
	c.QSumNs = s.load(wQSum)
	c.QCount = s.load(wQCount)
	c.Promoted, c.Demoted = s.load(wPromoted), s.load(wDemoted)
	for i := range c.Rejected {
		c.Rejected[i] = s.load(wRejected + i)
	}
	for i := range c.LatBuckets {
		c.LatBuckets[i] = s.load(wLatBucket + i)
		c.QBuckets[i] = s.load(wQBucket + i)
		c.Requests += c.LatBuckets[i]
	}
	return c
}

// finished is the number of requests that left their handler: the sum of
// the latency buckets (End adds one to exactly one of them).
func (s Slot) finished() uint64 {
	var n uint64
	for i := range nBuckets {
		n += s.load(wLatBucket + i)
	}
	return n
}

func (s Slot) load(i int) uint64 { return atomic.LoadUint64(&s.w[i]) }

// PID is the slot owner's pid (0 when empty).
func (s Slot) PID() int {
	if s.w == nil {
		return 0
	}
	return int(s.load(wPID))
}

// Info is a point-in-time view of a slot.
type Info struct {
	PID         int
	State       State
	Requests    uint64
	InFlight    int64
	Bytes       uint64
	Connections int64
	Reading     int64     // connections reading a request head
	Attached    time.Time // when the worker mapped its slot (zero while booting)
	Current     Request   // the request in flight, or the last one served
}

// Request is the "current request" block.
type Request struct {
	Method, Path, Client string
	Start                int64 // CLOCK_MONOTONIC ns; 0 when none yet
}

// Age is how long ago the request started, by the monotonic clock.
func (r Request) Age() time.Duration {
	if r.Start == 0 {
		return 0
	}
	return time.Duration(monoNow() - r.Start)
}

// Info reads the slot.
func (s Slot) Info() Info {
	if s.w == nil {
		return Info{}
	}
	// Finished before begun: a request counted finished was counted begun
	// before, so in flight is never negative (it may include a request that
	// began between the two reads).
	done := s.finished()
	in := Info{
		PID:         int(s.load(wPID)),
		State:       State(s.load(wState)),
		Requests:    done,
		InFlight:    int64(s.load(wBegun) - done),
		Bytes:       s.load(wBytes),
		Connections: int64(s.load(wConns)),
		Reading:     int64(s.load(wReading)),
		Current:     s.Current(),
	}
	in.State = derive(in)
	if ns := s.load(wBoot); ns != 0 {
		in.Attached = time.Unix(0, int64(ns))
	}
	return in
}

// derive turns a running worker's counters into its state, busiest first:
// handling (a request in its handler), reading (a connection mid-head),
// keep-alive (connections open, waiting for their next request), idle. The
// workers never store these states: concurrent connections and requests
// would overwrite each other's, while counters only add.
func derive(in Info) State {
	if in.State != StateIdle && in.State != StateHandling {
		return in.State // empty, booting, or set by SetState
	}
	switch {
	case in.InFlight > 0:
		return StateHandling
	case in.Reading > 0:
		return StateReading
	case in.Connections > 0:
		return StateKeepAlive
	}
	return StateIdle
}

// Current reads the request block consistently (seqlock read side). It
// gives up after a bounded number of retries (a worker killed mid-write
// leaves the sequence odd forever; writers may keep overtaking the reader)
// and then returns the zero Request: never a torn one.
func (s Slot) Current() Request {
	var r Request
	if s.w == nil || !s.readSeq(wSeq, func() {
		r = Request{
			Method: s.readString(wMethod, methodLen),
			Client: s.readString(wClient, clientLen),
			Path:   s.readString(wPath, pathLen),
			Start:  int64(s.load(wStart)),
		}
	}) {
		return Request{}
	}
	return r
}

// readSeq runs read until it ran with the sequence word seqW even and
// unchanged around it (the seqlock read side), and reports whether that
// happened within a bounded number of tries.
func (s Slot) readSeq(seqW int, read func()) bool {
	for try := 0; try < 1000; try++ {
		if try%16 == 15 {
			runtime.Gosched()
		}
		seq := s.load(seqW)
		if seq&1 != 0 {
			continue
		}
		read()
		if s.load(seqW) == seq {
			return true
		}
	}
	return false
}

func (s Slot) readString(word, n int) string {
	var buf [pathLen]byte
	for i := 0; i < n/8; i++ {
		v := s.load(word + i)
		for j := 0; j < 8; j++ {
			buf[i*8+j] = byte(v >> (8 * j))
		}
	}
	end := 0
	for end < n && buf[end] != 0 {
		end++
	}
	return string(buf[:end])
}

// monoNow is CLOCK_MONOTONIC in ns, the same clock in every process, read
// through the runtime's vDSO path (unix.ClockGettime would be a real
// syscall on every request).
func monoNow() int64 { return nanotime() }

// Now is CLOCK_MONOTONIC in ns, as the scoreboard reads it: for a class
// that times handlers on its hot path (time.Now reads two clocks).
func Now() int64 { return nanotime() }

//go:linkname nanotime runtime.nanotime
func nanotime() int64
