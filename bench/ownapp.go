package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/multiserve/multiserve/apps"
)

// noSuchApp is an app name no program registers: asking a binary to check
// its configuration with it makes it list the apps it has.
const noSuchApp = "bench-no-such-app"

var knownApps = regexp.MustCompile(`\(known: ([^)]*)\)`)

// registeredApps asks a multiserve-compatible binary which apps it serves
// beyond the built-in ones.
func registeredApps(ctx context.Context, bin string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--check-config", noSuchApp).CombinedOutput()
	m := knownApps.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("bench: %s --check-config %s did not list its apps: %s", bin, noSuchApp, lastLines(string(out), 3))
	}
	builtin := apps.Names()
	var own []string
	for n := range strings.SplitSeq(string(m[1]), ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(builtin, n) {
			own = append(own, n)
		}
	}
	return own, nil
}

// checkServerFlags runs the binary's --check-config with --server-flags,
// so a bad flag fails at once instead of as every class's failed start.
func (b *bench) checkServerFlags(ctx context.Context, bin string) error {
	if len(b.opts.serverFlags) == 0 || bin == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := append(append([]string{"--check-config"}, b.opts.serverFlags...), "hello")
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: --server-flags %q: %s", strings.Join(b.opts.serverFlags, " "), lastLines(string(out), 2))
	}
	return nil
}

// resolveApp checks --app against the program's apps, or picks the one it
// registers, so a misspelled or missing --app fails before any run instead
// of benching a built-in app at the user's path.
func (b *bench) resolveApp(ctx context.Context, bin string) error {
	if err := b.checkServerFlags(ctx, bin); err != nil {
		return err
	}
	o := &b.opts
	if len(o.paths) == 0 || bin == "" {
		return nil
	}
	own, err := registeredApps(ctx, bin)
	if err != nil {
		return err
	}
	names := fmt.Sprintf("registers %s", strings.Join(own, ", "))
	if len(own) == 0 {
		names = "registers no app of its own (multiserve.Register)"
	}
	switch {
	case o.app == "" && len(own) == 1:
		o.app = own[0]
		b.logf("bench: benching app %s, the one your program registers", o.app)
	case o.app == "":
		return fmt.Errorf("bench: --app needed: your program %s", names)
	case !slices.Contains(own, o.app) && !slices.Contains(apps.Names(), o.app) && !strings.HasPrefix(o.app, "static:"):
		return fmt.Errorf("bench: --app %q: your program %s", o.app, names)
	}
	return nil
}
