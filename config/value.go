package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// convert turns a raw value from a flag, the environment or a config file
// into the Go type of want (a setting's Default). Strings come from flags and
// the environment; numbers, bools, lists and tables from files; a null from
// a file means the default. The error says what was expected, for a
// UsageError's reason.
func convert(want, raw any) (any, error) {
	if raw == nil { // "pidfile:" with no value in YAML, null in JSON
		return cloneValue(want), nil
	}
	switch want.(type) {
	case int:
		n, err := toInteger(raw)
		if err != nil || n != int64(int(n)) {
			return nil, fmt.Errorf("want an integer")
		}
		return int(n), nil
	case int64:
		n, err := toInteger(raw)
		if err != nil {
			return nil, fmt.Errorf("want an integer")
		}
		return n, nil
	case bool:
		return toBool(raw)
	case string:
		if s, ok := raw.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("want a string (quote it in the config file)")
	case time.Duration:
		return toDuration(raw)
	case []string:
		return toList(raw)
	case map[string]string:
		return toTable(raw)
	}
	panic(fmt.Sprintf("config: setting of unsupported type %T", want))
}

func toInteger(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("too large")
		}
		return int64(x), nil
	case float64: // JSON numbers
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("not an integer")
		}
		return int64(x), nil
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	}
	return 0, fmt.Errorf("not an integer")
}

func toBool(raw any) (any, error) {
	switch x := raw.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want true or false")
}

// toDuration accepts Go durations ("30s", "1m30s") and, as gunicorn users
// write them, plain numbers of seconds (30, "30", 0.5).
func toDuration(raw any) (any, error) {
	const want = `want a duration such as "30s", or a number of seconds`
	switch x := raw.(type) {
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if d, err := time.ParseDuration(s); err == nil {
			return d, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf(want)
		}
		return secondsToDuration(f)
	case int, int64, uint64:
		n, err := toInteger(x)
		if err != nil {
			return nil, fmt.Errorf(want)
		}
		return secondsToDuration(float64(n))
	case float64:
		return secondsToDuration(x)
	}
	return nil, fmt.Errorf(want)
}

func secondsToDuration(f float64) (any, error) {
	if math.IsNaN(f) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
		return nil, fmt.Errorf("duration out of range")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// toList accepts a list from a file, a []string from a flag, or a
// comma-separated string from the environment.
func toList(raw any) (any, error) {
	switch x := raw.(type) {
	case []string:
		return slices.Clone(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return splitList(x), nil
	}
	return nil, fmt.Errorf("want a list of strings")
}

func splitList(s string) []string {
	out := []string{}
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// toTable accepts a table of strings from a file or "K=V,K=V" from the
// environment. Keys are upper-cased: viper lower-cases file keys, and header
// names compare case-insensitively anyway.
func toTable(raw any) (any, error) {
	const want = "want a table of header = value (HEADER=value,HEADER=value in the environment)"
	out := map[string]string{}
	switch x := raw.(type) {
	case map[string]string:
		for k, v := range x {
			out[strings.ToUpper(k)] = v
		}
	case map[string]any:
		for k, v := range x {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf(want)
			}
			out[strings.ToUpper(k)] = s
		}
	case string:
		for _, pair := range splitList(x) {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf(want)
			}
			out[strings.ToUpper(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	default:
		return nil, fmt.Errorf(want)
	}
	return out, nil
}

// formatValue renders a setting's value for messages and --print-config:
// lists comma-separated, tables as sorted K=V pairs.
func formatValue(v any) string {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case map[string]string:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+"="+x[k])
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// octalString turns a number a config file gave (TOML 0o022, YAML 0022:
// both decode to 18) into the octal string the setting holds.
func octalString(raw any) any {
	if n, err := toInteger(raw); err == nil {
		if _, isString := raw.(string); !isString {
			return fmt.Sprintf("%04o", n)
		}
	}
	return raw
}

// lowerCase folds a name's case: WARNING is warning.
func lowerCase(raw any) any {
	if s, ok := raw.(string); ok {
		return strings.ToLower(s)
	}
	return raw
}
