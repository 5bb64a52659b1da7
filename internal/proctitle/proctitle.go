// Package proctitle sets what ps and /proc/PID/cmdline show for this
// process, so an operator can tell the arbiter, its workers and an old
// arbiter during an upgrade apart before sending signals by hand.
//
// Linux shows the memory the kernel placed argv in (from the first
// argument's first byte to the last one's NUL). A Go program's os.Args
// strings point into that memory, so Prepare first gives os.Args copies of
// their own (later code, flag parsing included, then never sees argv's
// bytes change) and remembers the area; Set then writes the title over
// it, NUL-padded. The title is cut to the area's length: a process
// started with a short command line gets a short title. Workers need none
// of this: the arbiter execs them with the title as their argv.
// Set also renames the main thread (15 bytes: top, ps -o comm).
package proctitle

import (
	"os"
	"strings"
	"sync"
	"unsafe"
)

var (
	mu   sync.Mutex
	area []byte // argv's bytes; nil until Prepare (then Set is a no-op)
)

// Prepare must run first thing in main, before anything reads os.Args.
// Afterwards os.Args holds copies and Set may overwrite the original.
func Prepare() {
	mu.Lock()
	defer mu.Unlock()
	if area != nil || len(os.Args) == 0 || len(os.Args[0]) == 0 {
		return
	}
	start := unsafe.StringData(os.Args[0])
	n := 0
	for _, a := range os.Args {
		// Only a contiguous run of arguments is known to be argv's area.
		if len(a) == 0 || unsafe.StringData(a) != (*byte)(unsafe.Add(unsafe.Pointer(start), n)) {
			break
		}
		n += len(a) + 1
	}
	for i, a := range os.Args {
		os.Args[i] = strings.Clone(a)
	}
	area = unsafe.Slice(start, n-1) // the last NUL stays: it ends the area for the kernel
}

// Set shows title as the command line (cut to fit) and as the thread
// name. Without Prepare it does nothing.
func Set(title string) {
	mu.Lock()
	defer mu.Unlock()
	if area == nil {
		return
	}
	n := copy(area, title)
	clear(area[n:])
	// /proc/self is the thread group leader, whose name ps shows; prctl
	// would rename whichever thread this goroutine runs on. Cosmetic, so
	// a failure is ignored.
	_ = os.WriteFile("/proc/self/comm", []byte(comm(title)), 0)
}

// comm is the thread name: at most 15 bytes.
func comm(title string) string {
	title = strings.TrimPrefix(title, "multiserve: ")
	if len(title) > 15 {
		title = title[:15]
	}
	return title
}
