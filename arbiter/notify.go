package arbiter

import (
	"net"
	"os"
)

// notify sends a state line to systemd's notification socket
// (sd_notify(3)) when NOTIFY_SOCKET is set; otherwise it does nothing.
// Errors are logged at debug level: a missing supervisor must not stop the
// server.
func (a *arbiter) notify(state string) {
	if err := sdNotify(state); err != nil {
		a.log.Debug("sd_notify", "state", state, "err", err)
	}
}

func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
