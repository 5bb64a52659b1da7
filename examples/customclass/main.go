// Command customclass is multiserve with one more worker class, perconn
// (an OS thread per connection), linked in by one blank import: the class
// registers itself, and --help, --check-config, the banner, the status page
// and bench (--pkg ./examples/customclass --classes perconn) know it.
//
//	go build -o customclass ./examples/customclass
//	./customclass -w 2 -k perconn hello
package main

import (
	"github.com/multiserve/multiserve"

	_ "github.com/multiserve/multiserve/examples/customclass/perconn"
)

func main() { multiserve.Main() }
