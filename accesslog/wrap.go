package accesslog

import (
	"net/http"
	"time"

	"github.com/multiserve/multiserve/internal/reqmeta"
	"github.com/multiserve/multiserve/internal/respmeter"
)

// Wrap returns a handler that serves with next and then writes one access
// log line to l. With a nil l it returns next unchanged, so callers need
// not special-case "no access log".
//
// The ResponseWriter next sees keeps http.Flusher, http.Hijacker and
// io.ReaderFrom (sendfile for static files) working when the underlying
// writer has them, and has Unwrap for http.ResponseController. If next
// panics, the line is still written (status 500 unless a status was
// already sent) and the panic continues to the server, which owns the
// recovery and its stack trace.
func Wrap(next http.Handler, l *Logger) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := respmeter.Get(w)
		start := time.Now()
		meta := requestMeta(w, r, start)
		finished := false
		defer func() {
			if finished {
				return
			}
			// Panicking: log it without recovering, and do not pool rec,
			// which the server's recovery code may still reach.
			if rec.Status == 0 {
				rec.Status = http.StatusInternalServerError
			}
			l.log(r, rec, start, meta)
		}()
		next.ServeHTTP(rec, r)
		finished = true
		l.log(r, rec, start, meta)
		respmeter.Put(rec)
	})
}

// meta is what Wrap notes before the handler runs.
type meta struct {
	queue time.Duration
	rid   string
}

// requestMeta takes the request id (honoured or generated, set on the
// request and echoed in the response) and the queue time.
func requestMeta(w http.ResponseWriter, r *http.Request, now time.Time) meta {
	m := meta{queue: -1, rid: reqmeta.RequestID(r)}
	w.Header().Set(reqmeta.HeaderRequestID, m.rid)
	if reqmeta.HasQueueStart(r) {
		m.queue = reqmeta.QueueTime(r, now)
	}
	return m
}

func (l *Logger) log(r *http.Request, rec *respmeter.Recorder, start time.Time, m meta) {
	status := rec.Status
	if status == 0 {
		status = http.StatusOK // nothing written: the server sends 200 with no body
	}
	e := entry{start: start, dur: time.Since(start), status: status, bytes: rec.Bytes, queue: m.queue, rid: m.rid}
	if rec.ResponseWriter != nil {
		e.header = rec.ResponseWriter.Header()
	}
	l.write(r, &e)
}
