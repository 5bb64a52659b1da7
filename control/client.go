package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/stats"
)

// EnvSocket is the default for --socket (the same variable the arbiter
// reads the control_socket setting from).
const EnvSocket = "MULTISERVE_CONTROL_SOCKET"

// Do sends one command to the control socket at path and returns the
// answer. A refused command is an error carrying the server's text.
func Do(path string, words []string) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err) // err names the socket
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	// A refused client may find the socket already closed by the server
	// (EPIPE) while the refusal waits to be read: read before reporting
	// the write error.
	_, werr := io.WriteString(c, strings.Join(words, " ")+"\n")
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("control: send: %w", werr)
		}
		return nil, fmt.Errorf("control: read answer: %w", err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("control: bad answer %q: %w", line, err)
	}
	if !r.OK {
		return nil, fmt.Errorf("control: %s", r.Error)
	}
	return r.Result, nil
}

// Main is `multiserve ctl [--socket PATH] [--json] VERB...`. It returns
// the exit status: 0 done, 1 the server refused or failed, 2 bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("ctl", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", os.Getenv(EnvSocket), "control socket path (the arbiter's control_socket; env "+EnvSocket+")")
	// The server's own flag name, so the path can be copied as it is.
	fs.StringVar(socket, "control-socket", *socket, "the same as --socket")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: multiserve ctl [--socket PATH] [--json] COMMAND\ncommands: %s\n", strings.Join(Verbs, ", "))
		fs.PrintDefaults()
	}
	fs.SetInterspersed(true)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return proc.ExitOK
		}
		fmt.Fprintf(stderr, "multiserve ctl: %v\n", err)
		fs.Usage()
		return proc.ExitUsage
	}
	if *socket == "" || fs.NArg() == 0 {
		fs.Usage()
		return proc.ExitUsage
	}
	res, err := Do(*socket, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "multiserve ctl: %v\n", err)
		return proc.ExitRuntime
	}
	if *asJSON {
		var buf bytes.Buffer
		_ = json.Indent(&buf, res, "", "  ")
		fmt.Fprintln(stdout, buf.String())
		return proc.ExitOK
	}
	if err := printText(stdout, fs.Args(), res); err != nil {
		fmt.Fprintf(stderr, "multiserve ctl: %v\n", err)
		return proc.ExitRuntime
	}
	return proc.ExitOK
}

// printText renders an answer for a person.
func printText(w io.Writer, words []string, res json.RawMessage) error {
	switch strings.Join(words, " ") {
	case "show workers":
		var ws []stats.WorkerStatus
		if err := json.Unmarshal(res, &ws); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tAGE\tGEN\tCLASS\tSTATE\tUP\tREQUESTS\tIN-FLIGHT\tRSS-KIB\tTHREADS\tREQUEST")
		for _, x := range ws {
			cur := ""
			if x.Current != nil {
				cur = fmt.Sprintf("%s %s (%s, %.0f ms)", x.Current.Method, x.Current.Path, x.Current.Client, x.Current.AgeSec*1000)
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", x.PID, x.Age, x.Generation, x.Class, x.State,
				(time.Duration(x.UptimeSec) * time.Second).String(), x.Requests, x.InFlight, x.RSSBytes/1024, x.Threads, cur)
		}
		return tw.Flush()
	case "show stats":
		var v StatsView
		if err := json.Unmarshal(res, &v); err != nil {
			return err
		}
		s := v.Summary
		fmt.Fprintf(w, "class %s, target %d, workers %d (busy %d, idle %d, booting %d, retiring %d), saturation %.0f%%, in flight %d, draining %v\n",
			v.Class, v.Target, s.Workers, s.Busy, s.Idle, s.Booting, s.Retiring, s.Saturation*100, s.InFlight, v.Draining)
		for _, c := range sortedKeys(v.Classes) {
			t := v.Classes[c]
			fmt.Fprintf(w, "%s: %d requests (%s), %d bytes out, latency mean %.1f ms, p50 <= %s, p99 <= %s\n",
				c, t.Requests, counts(t.Responses), t.Bytes, t.LatencyMean*1000, bound(t.LatencyP50), bound(t.LatencyP99))
		}
		fmt.Fprintf(w, "restarts: %s\n", counts(v.Restarts))
		for _, l := range v.Listeners {
			if l.Measured {
				fmt.Fprintf(w, "listener %s: accept queue %d/%d\n", l.Name, l.Queue, l.Backlog)
			}
		}
		return nil
	case "show config":
		var buf bytes.Buffer
		if err := json.Indent(&buf, res, "", "  "); err != nil {
			return err
		}
		fmt.Fprintln(w, buf.String())
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(res, &m); err != nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(w, "%s: %v\n", k, m[k])
	}
	return nil
}

// counts prints the non-zero entries of m as "k=n k=n", sorted, or "none".
func counts(m map[string]uint64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// bound prints a histogram bucket bound (-1 is beyond the last bucket).
func bound(sec float64) string {
	if sec < 0 {
		return "inf"
	}
	return (time.Duration(sec * float64(time.Second))).String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
