package config

import (
	"maps"
	"slices"
)

// Default returns the configuration with every setting at its table
// default. Slices and maps are fresh copies, so callers may modify them.
func Default() *Config {
	c := &Config{}
	for _, s := range Settings() {
		c.set(s.Key, cloneValue(s.Default))
	}
	return c
}

// cloneValue copies slice and map values so no two configs share them.
func cloneValue(v any) any {
	switch x := v.(type) {
	case []string:
		return slices.Clone(x)
	case map[string]string:
		return maps.Clone(x)
	}
	return v
}
