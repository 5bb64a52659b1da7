package rawload

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLoadKeepAliveWithPosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && n != 1000 {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	l := Start(Options{Addr: srv.Listener.Addr().String(), Clients: 3, KeepAlive: true, PostEvery: 2, BodySize: 1000})
	deadline := time.Now().Add(10 * time.Second)
	for l.Posts.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	l.Stop()
	l.WantNoLoss(t, true)
	if l.Posts.Load() < 50 || l.Closed.Load() != 0 {
		t.Errorf("want 50 POSTs answered on kept-alive connections: %s", l)
	}
}

// A server that reads a request and closes without answering: the client
// must count it lost, not resend it.
func TestLoadCountsDroppedRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err == nil {
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					http.ReadRequest(br) // the second request is dropped
				}
				c.Close()
			}()
		}
	}()
	cl := &Client{Addr: ln.Addr().String(), KeepAlive: true}
	defer cl.Close()
	if r := cl.Get("/"); r.Err != nil || r.Status != 200 {
		t.Fatalf("first request: %+v", r)
	}
	r := cl.Do(http.MethodPost, "/", []byte("body"))
	if !r.Lost() || !r.Reused || r.Got != 0 {
		t.Fatalf("dropped request not counted lost: %+v (%s)", r, ErrKind(r))
	}
}
