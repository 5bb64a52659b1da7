package evloop

import (
	"net"
	"reflect"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Handing an accepted descriptor to gnet. gnet v2.9.7's only public way in
// is Engine.Register, which wants a *net.TCPConn or *net.UnixConn (so Go's
// accept, with its socket options and netpoller registration), dups its fd
// on a goroutine of gnet's pool, closes the original and waits on a
// channel for the loop: a dozen syscalls and several thread hand-offs per
// connection. gnet's own acceptor does neither: on the loop it wraps the
// fd in a connection (newStreamConn) and adds it to the loop's epoll set
// (register0). evloop calls those two, on the loop, from a task posted by
// its accept loop (accept.go), so a connection costs what it costs under
// gnet's acceptor while every accept error stays ours. They are reached by
// linkname with the loop and connection as opaque pointers; their
// signatures are pinned with gnet's version (TestGnetVersionPinned,
// TestEngineLoops, and every test that serves through the accept loop).

//go:linkname gnetNewStreamConn github.com/panjf2000/gnet/v2.newStreamConn
func gnetNewStreamConn(proto string, fd int, el unsafe.Pointer, sa unix.Sockaddr, localAddr, remoteAddr net.Addr) unsafe.Pointer

//go:linkname gnetRegister github.com/panjf2000/gnet/v2.(*eventloop).register0
func gnetRegister(el, c unsafe.Pointer) error

// gnetLoop is one of the engine's event loops: the public interface and
// the pointer gnet's own functions take.
type gnetLoop struct {
	el  gnet.EventLoop
	ptr unsafe.Pointer // *gnet.eventloop
}

// engineLoops returns every event loop of eng (engine.eventLoops, a load
// balancer whose eventLoops slice holds them), or nil when the layout is
// not gnet v2.9.7's. gnet has no API that lists its loops.
func engineLoops(eng gnet.Engine) []gnetLoop {
	e := reflect.ValueOf(eng).FieldByName("eng")
	if e.Kind() != reflect.Pointer || e.IsNil() {
		return nil
	}
	lb := e.Elem().FieldByName("eventLoops")
	if lb.Kind() != reflect.Interface || lb.IsNil() || lb.Elem().Kind() != reflect.Pointer || lb.Elem().IsNil() {
		return nil
	}
	els := lb.Elem().Elem().FieldByName("eventLoops")
	if els.Kind() != reflect.Slice {
		return nil
	}
	var out []gnetLoop
	for i := range els.Len() {
		p := els.Index(i)
		if p.Kind() != reflect.Pointer || p.IsNil() {
			return nil
		}
		el, ok := reflect.NewAt(p.Type().Elem(), p.UnsafePointer()).Interface().(gnet.EventLoop)
		if !ok {
			return nil
		}
		out = append(out, gnetLoop{el: el, ptr: p.UnsafePointer()})
	}
	return out
}

// enroll makes the accepted socket fd a connection of the loop and opens
// it (OnOpen). Only on the loop. gnet closes fd itself when adding it to
// epoll fails. gnet keeps a stream connection's unix.Sockaddr for nothing
// (datagram sockets send to it), so none is made.
func (gl gnetLoop) enroll(fd int, laddr, raddr net.Addr) error {
	proto := "tcp"
	if _, ok := raddr.(*net.UnixAddr); ok {
		proto = "unix"
	}
	return gnetRegister(gl.ptr, gnetNewStreamConn(proto, fd, gl.ptr, nil, laddr, raddr))
}
