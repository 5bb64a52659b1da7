package apps

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
)

// EchoBodyLimit is the most request-body bytes echo reads and returns;
// the rest is left unread and "body_truncated" is set.
const EchoBodyLimit = 1 << 20

// echoReply is the JSON echo writes. Field names are part of the app's
// interface (tests and the bench read "pid").
type echoReply struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	Query         string              `json:"query"`
	Proto         string              `json:"proto"`
	Host          string              `json:"host"`
	Headers       map[string][]string `json:"headers"`
	Body          string              `json:"body"`
	BodyTruncated bool                `json:"body_truncated"`
	RemoteAddr    string              `json:"remote_addr"`
	PID           int                 `json:"pid"`
}

// Echo returns the "echo" app: the request's method, path, query,
// headers, body (up to EchoBodyLimit) and remote address, and the
// worker's pid, as JSON. It also sets X-Worker-Pid.
func Echo() http.Handler { return http.HandlerFunc(echo) }

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, EchoBodyLimit+1))
	if err != nil {
		http.Error(w, "echo: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	reply := echoReply{
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      r.URL.RawQuery,
		Proto:      r.Proto,
		Host:       r.Host,
		Headers:    r.Header,
		RemoteAddr: r.RemoteAddr,
		PID:        os.Getpid(),
	}
	if len(body) > EchoBodyLimit {
		body, reply.BodyTruncated = body[:EchoBodyLimit], true
	}
	reply.Body = string(body)
	out, err := json.Marshal(&reply)
	if err != nil { // cannot happen for these field types
		http.Error(w, "echo: encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	out = append(out, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	h.Set("X-Worker-Pid", pidString)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}
