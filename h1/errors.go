package h1

import "fmt"

// Error is a request the engine refuses. Status is the response code sent
// (400, 413, 414, 417, 431, 501, 505); the connection is always closed after it.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("h1: %d %s", e.Status, e.Msg) }

func errBadRequest(msg string) *Error { return &Error{Status: 400, Msg: msg} }
