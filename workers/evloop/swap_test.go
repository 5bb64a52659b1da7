package evloop

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSwapSelfTestPark exercises the swap primitives on plain sockets: the
// swapped slot reports the inherited socket's address, the self-test
// rejects a slot bound elsewhere, and park leaves an idle listener there.
func TestSwapSelfTestPark(t *testing.T) {
	inherited, _, _ := listenSock(t, "tcp")
	slot, _, _ := listenSock(t, "tcp") // stands for gnet's dummy listener
	t.Cleanup(func() { _ = unix.Close(inherited); _ = unix.Close(slot) })
	want, err := sockName(inherited)
	if err != nil {
		t.Fatal(err)
	}
	if err := swapInto(slot, inherited); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if got, _ := sockName(slot); got != want {
		t.Fatalf("slot bound to %s, want %s", got, want)
	}
	if err := selfTest(slot, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "self-test") {
		t.Fatalf("self-test against a wrong address: %v", err)
	}
	if err := park(slot); err != nil {
		t.Fatal(err)
	}
	got, _ := sockName(slot)
	if got == want || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("parked slot bound to %s", got)
	}
	if acc, _ := unix.GetsockoptInt(slot, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); acc != 1 {
		t.Fatal("parked slot is not listening (gnet's acceptor would fail instead of seeing EAGAIN)")
	}
	if _, _, err := unix.Accept(slot); err != unix.EAGAIN {
		t.Fatalf("accept on a parked slot: %v, want EAGAIN", err)
	}
	if acc, _ := unix.GetsockoptInt(inherited, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); acc != 1 {
		t.Fatal("parking closed the inherited socket")
	}
}
