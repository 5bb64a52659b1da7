package config

import (
	"fmt"
	"strings"
)

// Markdown renders docs/settings.md from the settings table, grouped by
// section. `multiserve settings` prints it; a test keeps the committed file
// in step with the table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Settings\n\n" +
		"<!-- Generated from config/settings.go; do not edit. Regenerate with:\n" +
		"     go test ./config -run TestSettingsDoc -update -->\n\n" +
		"Every setting can be given as a command-line flag, as an environment variable\n" +
		"`MULTISERVE_<SETTING>` (upper case), or as a key in the config file named by `-c`\n" +
		"(TOML, YAML or JSON, chosen by the file's extension). Precedence: flag > environment >\n" +
		"config file > default. Durations take Go syntax (`30s`, `1m30s`) or a plain number of\n" +
		"seconds, as gunicorn users write them (`timeout = 30`). Lists take a repeated flag\n" +
		"(`-b A -b B`) or comma-separated values (`MULTISERVE_BIND=A,B`). An unknown key, an\n" +
		"unknown worker class or an invalid value stops multiserve with one line naming it and\n" +
		"exit status 2, before anything is bound. `multiserve --print-config` shows every resolved\n" +
		"value and where it came from (default, file, env or flag); `--check-config` validates and exits.\n\n")
	b.WriteString("| setting | flag | default |\n|---|---|---|\n")
	for _, s := range Settings() {
		flag := code(flagDisplay(s), "none")
		if s.Key == "app" {
			flag = "the APP argument"
		}
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s |\n", s.Key, s.Key, flag, docDefault(s))
	}
	for _, sec := range sections {
		fmt.Fprintf(&b, "\n## %s\n", sec)
		for _, s := range Settings() {
			if s.Section == sec {
				writeSetting(&b, s)
			}
		}
	}
	b.WriteString(gunicornMarkdown())
	return b.String()
}

func writeSetting(b *strings.Builder, s Setting) {
	fmt.Fprintf(b, "\n### %s\n\n", s.Key)
	switch {
	case s.Key == "app":
		b.WriteString("- positional argument: `multiserve [flags] APP`\n")
	case s.Flag != "":
		fmt.Fprintf(b, "- flag: `%s`\n", flagDisplay(s))
	default:
		b.WriteString("- flag: none (config file or environment only)\n")
	}
	env := "`" + envName(s.Key) + "`"
	if s.AltEnv != "" {
		env += ", then `" + s.AltEnv + "` (below the config file)"
	}
	fmt.Fprintf(b, "- environment: %s\n", env)
	fmt.Fprintf(b, "- default: %s\n", docDefault(s))
	fmt.Fprintf(b, "- worker classes: %s\n\n", classesNote(classesUsing(s.Key)))
	short, rest, _ := strings.Cut(s.Help, "\n")
	b.WriteString(short + "\n")
	if rest != "" {
		b.WriteString("\n" + rest + "\n")
	}
}

// emptyMeans says what an empty default stands for, where "none" would mislead.
var emptyMeans = map[string]string{
	"worker_tmp_dir": "`/dev/shm` if present, else the OS temp dir",
	"user":           "unchanged",
	"group":          "unchanged",
	"umask":          "unchanged",
}

func docDefault(s Setting) string {
	if v := formatValue(s.Default); v != "" {
		return "`" + v + "`"
	}
	if m, ok := emptyMeans[s.Key]; ok {
		return m
	}
	return "none"
}

func code(s, empty string) string {
	if s == "" {
		return empty
	}
	return "`" + s + "`"
}

// classesNote is gunicorn's "only affects the threaded worker" note.
func classesNote(classes []string) string {
	if len(classes) == 0 {
		return "all"
	}
	return "only " + code(strings.Join(classes, "`, `"), "")
}
