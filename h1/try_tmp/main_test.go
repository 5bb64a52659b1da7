package h1try

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"

	"github.com/multiserve/multiserve/h1"
)

func TestProbe(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	srv := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "hello %s %d\n", r.URL.Path, n)
	})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.NewConn(c).Serve(context.Background(), false)
		}
	}()
	cmd := exec.Command("python3", "/work/shared/h1probe/h1probe.py", "--port", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	cmd.Args = append(cmd.Args, os.Getenv("PROBEARGS"))
	if os.Getenv("PROBEARGS") == "" { cmd.Args = cmd.Args[:len(cmd.Args)-1] }
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
