package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/multiserve/multiserve/internal/suggest"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// Validate runs every setting's Check and the rules that span settings, and
// returns all problems joined (errors.Join), each a one-line *UsageError.
func (c *Config) Validate() error {
	var errs []error
	for _, s := range Settings() {
		if s.Check == nil {
			continue
		}
		v := c.get(s.Key)
		if err := s.Check(v); err != nil {
			errs = append(errs, asUsage(s.Key, v, err))
		}
	}
	errs = append(errs, c.crossChecks()...)
	errs = append(errs, c.classChecks()...)
	return errors.Join(errs...)
}

// crossChecks are the rules no single setting can check alone.
func (c *Config) crossChecks() []error {
	var errs []error
	bad := func(key, reason string) {
		errs = append(errs, &UsageError{Setting: key, Value: formatValue(c.get(key)), Reason: reason})
	}
	if c.Certfile != "" && c.Keyfile == "" {
		bad("certfile", "needs keyfile as well")
	}
	if c.Keyfile != "" && c.Certfile == "" {
		bad("keyfile", "needs certfile as well")
	}
	if c.CACerts != "" && c.Certfile == "" {
		bad("ca_certs", "needs certfile and keyfile as well")
	}
	if c.Certfile != "" && c.Keyfile != "" {
		// Load now so a bad file is a usage error, not a failure in every worker.
		if _, err := tlsconf.Load(c.Certfile, c.Keyfile, c.CACerts); err != nil {
			bad("certfile", err.Error())
		}
	}
	return errs
}

// asUsage turns a Check's error into a UsageError naming key and value. A
// Check may return a *UsageError itself to name a list element as the value
// or to suggest a name.
func asUsage(key string, v any, err error) *UsageError {
	var u *UsageError
	if errors.As(err, &u) {
		cp := *u
		cp.Setting = key
		if cp.Value == "" {
			cp.Value = formatValue(v)
		}
		return &cp
	}
	return &UsageError{Setting: key, Value: formatValue(v), Reason: err.Error()}
}

// fieldIndex maps each mapstructure tag of Config to its field index.
var fieldIndex = func() map[string]int {
	t := reflect.TypeFor[Config]()
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		m[t.Field(i).Tag.Get("mapstructure")] = i
	}
	return m
}()

// get returns the value of the field tagged key.
func (c *Config) get(key string) any {
	return reflect.ValueOf(c).Elem().Field(fieldIndex[key]).Interface()
}

// set stores v, which has the setting's Go type, in the field tagged key.
func (c *Config) set(key string, v any) {
	reflect.ValueOf(c).Elem().Field(fieldIndex[key]).Set(reflect.ValueOf(v))
}

// Checks used by the table. Each receives a value of its setting's type.

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	}
	panic(fmt.Sprintf("config: integer check on %T", v))
}

func atLeast(lo int64) func(any) error {
	return func(v any) error {
		if toInt64(v) < lo {
			return fmt.Errorf("must be at least %d", lo)
		}
		return nil
	}
}

func between(lo, hi int64) func(any) error {
	return func(v any) error {
		if n := toInt64(v); n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return nil
	}
}

func nonNegative(v any) error {
	if v.(time.Duration) < 0 {
		return errors.New(`must not be negative (a duration such as "30s", or whole seconds; 0 disables)`)
	}
	return nil
}

func positive(v any) error {
	if v.(time.Duration) <= 0 {
		return errors.New(`must be positive (a duration such as "1ms")`)
	}
	return nil
}

func nonEmpty(v any) error {
	if v.(string) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(any) error {
	return func(v any) error {
		s := v.(string)
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		return &UsageError{Reason: "must be one of " + strings.Join(allowed, ", "), Suggest: suggest.Nearest(s, allowed)}
	}
}

func checkApp(v any) error {
	s := v.(string)
	if s == "" {
		return errors.New("must name an application (hello, echo, sim, static:DIR, or a registered name)")
	}
	if s == "static:" {
		return errors.New("static: needs a directory, as in static:./public")
	}
	return nil
}

func checkBinds(v any) error {
	binds := v.([]string)
	if len(binds) == 0 {
		return errors.New("at least one address is needed")
	}
	for _, b := range binds {
		if _, _, err := ParseBind(b); err != nil {
			return &UsageError{Value: b, Reason: err.Error()}
		}
	}
	return nil
}

func checkStatsBind(v any) error {
	s := v.(string)
	if s == "" {
		return nil
	}
	network, _, err := ParseBind(s)
	if err != nil {
		return err
	}
	if network == "fd" {
		return errors.New("must be HOST:PORT or unix:PATH")
	}
	return nil
}

func checkIPList(v any) error {
	for _, s := range v.([]string) {
		if s == "*" || net.ParseIP(s) != nil {
			continue
		}
		if _, _, err := net.ParseCIDR(s); err == nil {
			continue
		}
		return &UsageError{Value: s, Reason: "must be IP addresses, CIDR networks or *"}
	}
	return nil
}

func checkHeaderTable(v any) error {
	for name, val := range v.(map[string]string) {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }) {
			return &UsageError{Value: name, Reason: "header names must be HTTP tokens"}
		}
		if val == "" {
			return &UsageError{Value: name, Reason: "each header needs the value that marks https"}
		}
	}
	return nil
}

// isTokenChar reports whether r may appear in an HTTP token (RFC 9110 §5.6.2).
func isTokenChar(r rune) bool {
	return r < 0x7f && r > ' ' && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

// checkRawEnv: every entry is KEY=VALUE with a name a shell could export,
// and none of multiserve's own MULTISERVE_* names, which carry the
// arbiter-worker protocol and the settings.
func checkRawEnv(v any) error {
	for _, kv := range v.([]string) {
		key, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || key == "":
			return &UsageError{Value: kv, Reason: "each entry must be KEY=VALUE"}
		case strings.ContainsFunc(key, func(r rune) bool { return r != '_' && !isAlnum(r) }) || (key[0] >= '0' && key[0] <= '9'):
			return &UsageError{Value: kv, Reason: "a variable name is letters, digits and _, not starting with a digit"}
		case strings.HasPrefix(strings.ToUpper(key), envPrefix):
			return &UsageError{Value: kv, Reason: envPrefix + "* variables are multiserve's own; set the setting instead"}
		case strings.ContainsRune(kv, 0):
			return &UsageError{Value: kv, Reason: "contains a NUL byte"}
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func checkDir(v any) error {
	s := v.(string)
	if s == "" {
		return nil
	}
	fi, err := os.Stat(s)
	if err != nil {
		return errors.New("must be an existing directory")
	}
	if !fi.IsDir() {
		return errors.New("must be a directory")
	}
	return nil
}

func checkUser(v any) error {
	return checkAccount(v.(string), "user", func(s string) error { _, err := user.Lookup(s); return err })
}

func checkGroup(v any) error {
	return checkAccount(v.(string), "group", func(s string) error { _, err := user.LookupGroup(s); return err })
}

// checkAccount accepts "", a numeric id, or a name that exists on this host.
func checkAccount(s, kind string, find func(string) error) error {
	if s == "" {
		return nil
	}
	if id, err := strconv.Atoi(s); err == nil {
		if id < 0 {
			return fmt.Errorf("must be a %s name or a non-negative id", kind)
		}
		return nil
	}
	if find(s) != nil {
		return fmt.Errorf("no such %s on this host (a name or a numeric id)", kind)
	}
	return nil
}

func checkUmask(v any) error {
	s := v.(string)
	if s == "" {
		return nil
	}
	if _, err := ParseUmask(s); err != nil {
		return err
	}
	return nil
}

// ParseUmask parses an octal umask such as "0022", "022" or "0o022".
func ParseUmask(s string) (int, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	if err != nil || n > 0o777 {
		return 0, errors.New("must be an octal number from 0000 to 0777, such as 0022")
	}
	return int(n), nil
}
