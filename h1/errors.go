package h1

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a request the engine refuses. Status is the response code sent
// (400, 413, 414, 417, 431, 501, 505); the connection is always closed after it.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("h1: %d %s", e.Status, e.Msg) }

func errBadRequest(msg string) *Error { return &Error{Status: 400, Msg: msg} }

// StatusOf is the status a refused request is answered with: the Error's,
// or 400 for any other parse failure.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusBadRequest
}

// NoteRejected tells Rejected (when set) about a request the engine
// answered with an error status; head is what the client sent of it, as
// far as it is known (nil when not).
func (s *Server) NoteRejected(remote string, status int, head []byte) {
	if s.Rejected != nil {
		s.Rejected(remote, status, head)
	}
}
