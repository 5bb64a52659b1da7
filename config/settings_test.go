package config

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/settings.md from the settings table")

// Every default passes its own check (gunicorn's test_defaults).
func TestDefaultsPassChecks(t *testing.T) {
	for _, s := range Settings() {
		if s.Check == nil {
			continue
		}
		if err := s.Check(s.Default); err != nil {
			t.Errorf("%s: default %v fails its check: %v", s.Key, s.Default, err)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// The table and the Config struct cannot drift: one entry per field, same
// names, same types.
func TestTableMatchesConfigStruct(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	fields := map[string]reflect.Type{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("mapstructure")
		if json := f.Tag.Get("json"); json != tag {
			t.Errorf("field %s: json tag %q differs from mapstructure tag %q", f.Name, json, tag)
		}
		fields[tag] = f.Type
	}
	seen := map[string]bool{}
	for _, s := range Settings() {
		if seen[s.Key] {
			t.Errorf("key %q declared twice", s.Key)
		}
		seen[s.Key] = true
		ft, ok := fields[s.Key]
		if !ok {
			t.Errorf("setting %q has no Config field", s.Key)
			continue
		}
		if dt := reflect.TypeOf(s.Default); dt != ft {
			t.Errorf("setting %q: default is %v, field is %v", s.Key, dt, ft)
		}
	}
	for tag := range fields {
		if !seen[tag] {
			t.Errorf("Config field tagged %q has no setting", tag)
		}
	}
}

var (
	kebab = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
)

func TestNamesAreWellFormed(t *testing.T) {
	flags := map[string]bool{}
	shorts := map[string]bool{}
	for _, m := range metaFlags {
		flags[m] = true
	}
	shorts["h"], shorts["v"] = true, true
	for _, s := range Settings() {
		if !snake.MatchString(s.Key) {
			t.Errorf("key %q is not snake_case", s.Key)
		}
		if !slices.Contains(sections, s.Section) {
			t.Errorf("%s: unknown section %q", s.Key, s.Section)
		}
		if s.Help == "" {
			t.Errorf("%s: no help", s.Key)
		}
		if s.Flag == "" {
			continue
		}
		if !kebab.MatchString(s.Flag) || flags[s.Flag] {
			t.Errorf("flag %q is not kebab-case or is not unique", s.Flag)
		}
		flags[s.Flag] = true
		if s.Shorthand != "" && (len(s.Shorthand) != 1 || shorts[s.Shorthand]) {
			t.Errorf("shorthand %q of %s is not one unique letter", s.Shorthand, s.Key)
		}
		shorts[s.Shorthand] = true
	}
}

// gunicorn users keep their muscle memory.
func TestGunicornShorthands(t *testing.T) {
	want := map[string]string{"b": "bind", "w": "workers", "k": "worker_class", "t": "timeout",
		"c": "config", "p": "pidfile", "u": "user", "g": "group", "m": "umask"}
	for short, key := range want {
		s, _ := lookup(key)
		if s.Shorthand != short {
			t.Errorf("%s: shorthand %q, want %q", key, s.Shorthand, short)
		}
	}
}

const docPath = "../docs/settings.md"

// TestSettingsDoc fails when docs/settings.md is stale. Regenerate with
//
//	go test ./config -run TestSettingsDoc -update
func TestSettingsDoc(t *testing.T) {
	want := Markdown()
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./config -run TestSettingsDoc -update", err)
	}
	if string(got) != want {
		t.Fatalf("docs/settings.md is stale; regenerate with: go test ./config -run TestSettingsDoc -update")
	}
}

func TestDefaultIsAFreshCopy(t *testing.T) {
	a, b := Default(), Default()
	a.Bind[0] = "changed"
	a.SecureSchemeHeaders["X"] = "y"
	if b.Bind[0] == "changed" || b.SecureSchemeHeaders["X"] == "y" {
		t.Fatal("Default() shares slices or maps between calls")
	}
	if s, _ := lookup("bind"); s.Default.([]string)[0] == "changed" {
		t.Fatal("Default() shares the table's slice")
	}
}

// TestHelpStatesNoClassLimit: which classes a setting applies to is
// generated from the class descriptors (the docs' "worker classes:" line);
// a help text that states a class limit itself ("not supported by evloop")
// goes stale when the class changes, so none may.
func TestHelpStatesNoClassLimit(t *testing.T) {
	limit := regexp.MustCompile(`(?i)\b(not supported|unsupported|not available|only with|only for|ignored|no effect)\b`)
	names := classes().Names()
	if len(names) == 0 {
		t.Fatal("no worker class linked into the test")
	}
	for _, s := range Settings() {
		if s.Key == "worker_class" {
			continue
		}
		for _, sentence := range regexp.MustCompile(`[.;]\s`).Split(s.Help, -1) {
			if !limit.MatchString(sentence) {
				continue
			}
			for _, n := range names {
				if regexp.MustCompile(`\b` + n + `\b`).MatchString(sentence) {
					t.Errorf("%s's help states a limit of class %s: %q; declare it in the class's descriptor (Settings, Check)", s.Key, n, sentence)
				}
			}
		}
	}
}
