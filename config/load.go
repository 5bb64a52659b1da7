package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Loaded is the outcome of Load: the resolved configuration, where each
// value came from, and the meta flags the command acts on.
type Loaded struct {
	Config  *Config
	Sources map[string]string // setting key → "default", "file", "env" or "flag" (the APP argument counts as a flag)

	PrintConfig bool   // --print-config
	CheckConfig bool   // --check-config
	ShowVersion bool   // -v, --version
	ShowHelp    bool   // -h, --help
	Usage       string // the --help text
}

// Load resolves the configuration from command-line args (without the
// program name), MULTISERVE_* environment variables, the config file named
// by -c/--config, and the defaults, in that order of precedence, and
// validates it. Every error that is the user's to fix is a *UsageError (exit
// status 2); with several bad values they are joined, one line each.
//
// Load keeps no state between calls: the arbiter calls it again with the same
// args on SIGHUP to re-read the config file. With --help or --version it
// returns the defaults without reading the environment or the file.
func Load(args []string) (*Loaded, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err)
	}
	l := &Loaded{Usage: usage(fs)}
	l.ShowHelp, _ = fs.GetBool("help")
	l.ShowVersion, _ = fs.GetBool("version")
	l.PrintConfig, _ = fs.GetBool("print-config")
	l.CheckConfig, _ = fs.GetBool("check-config")
	if l.ShowHelp || l.ShowVersion {
		l.Config, l.Sources = Default(), defaultSources()
		return l, nil
	}
	if fs.NArg() > 1 {
		return nil, usagef("too many arguments %q: expected at most one APP", fs.Args())
	}
	cfg, sources, err := resolve(fs)
	if err != nil {
		return nil, err
	}
	l.Config, l.Sources = cfg, sources
	return l, nil
}

// resolve layers the sources with a fresh viper instance (never the global
// one, so Load can be called again), decodes every setting and validates.
func resolve(fs *pflag.FlagSet) (*Config, map[string]string, error) {
	v := viper.New()
	for _, s := range Settings() {
		v.SetDefault(s.Key, s.Default)
		if alt := os.Getenv(s.AltEnv); s.AltEnv != "" && alt != "" {
			v.SetDefault(s.Key, alt)
		}
		if err := v.BindEnv(s.Key, envName(s.Key)); err != nil {
			return nil, nil, fmt.Errorf("config: bind env %s: %w", s.Key, err)
		}
		if s.Flag != "" {
			if err := v.BindPFlag(s.Key, fs.Lookup(s.Flag)); err != nil {
				return nil, nil, fmt.Errorf("config: bind flag %s: %w", s.Flag, err)
			}
		}
	}
	if fs.NArg() == 1 {
		v.Set("app", fs.Arg(0))
	}
	src := sourcer{fs: fs, v: v}
	path, err := decodeOne(v, src, "config")
	if err != nil {
		return nil, nil, err
	}
	if src.file = path.(string); src.file != "" {
		if err := readFile(v, src.file); err != nil {
			return nil, nil, err
		}
	}
	cfg := &Config{}
	sources := make(map[string]string, len(table))
	var errs []error
	for _, s := range Settings() {
		sources[s.Key] = src.kind(s)
		val, err := decodeOne(v, src, s.Key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.set(s.Key, val)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if cfg.Chdir != "" {
		// Absolute once, here: workers and a later HUP must not resolve it
		// again from a directory the arbiter has since changed to.
		if abs, err := filepath.Abs(cfg.Chdir); err == nil {
			cfg.Chdir = abs
		}
	}
	if cfg.WorkerTmpDir == "" {
		cfg.WorkerTmpDir = defaultTmpDir()
	}
	// A class may choose its own defaults for the settings left unset.
	classes().Prepare(cfg, func(key string) bool { return sources[key] == "default" })
	if err := cfg.Validate(); err != nil {
		usageErrors(err, func(u *UsageError) {
			if s, ok := lookup(u.Setting); ok && u.Source == "" {
				u.Source = src.detail(s)
			}
		})
		return nil, nil, err
	}
	return cfg, sources, nil
}

// decodeOne converts the winning raw value of key to the setting's type.
func decodeOne(v *viper.Viper, src sourcer, key string) (any, error) {
	s, _ := lookup(key)
	raw := v.Get(key)
	if s.Normalize != nil {
		raw = s.Normalize(raw)
	}
	val, err := convert(s.Default, raw)
	if err != nil {
		return nil, &UsageError{Setting: key, Value: rawString(raw), Source: src.detail(s), Reason: err.Error()}
	}
	return val, nil
}

func rawString(raw any) string {
	if l, ok := raw.([]any); ok {
		parts := make([]string, len(l))
		for i, e := range l {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	}
	return formatValue(raw)
}

// sourcer tells where the value viper picked for a setting came from,
// following viper's own order: changed flag, non-empty env, file, default.
type sourcer struct {
	fs   *pflag.FlagSet
	v    *viper.Viper
	file string
}

func (src sourcer) kind(s Setting) string {
	switch {
	case s.Key == "app" && src.fs.NArg() == 1, s.Flag != "" && src.fs.Changed(s.Flag):
		return "flag"
	case os.Getenv(envName(s.Key)) != "":
		return "env"
	case src.file != "" && src.v.InConfig(s.Key):
		return "file"
	case s.AltEnv != "" && os.Getenv(s.AltEnv) != "":
		return "env"
	}
	return "default"
}

// detail names the source precisely, for error messages.
func (src sourcer) detail(s Setting) string {
	switch src.kind(s) {
	case "flag":
		if s.Key == "app" {
			return "the APP argument"
		}
		return "--" + s.Flag
	case "env":
		if os.Getenv(envName(s.Key)) == "" && s.AltEnv != "" {
			return s.AltEnv
		}
		return envName(s.Key)
	case "file":
		return src.file
	}
	return "default"
}

func defaultSources() map[string]string {
	m := make(map[string]string, len(table))
	for _, s := range Settings() {
		m[s.Key] = "default"
	}
	return m
}

// readFile reads the config file into v and rejects keys that are no
// setting, naming the nearest one.
func readFile(v *viper.Viper, path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml", ".yaml", ".yml", ".json":
	default:
		return &UsageError{Setting: "config", Value: path, Reason: "the config file must end in .toml, .yaml, .yml or .json"}
	}
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // it names the file already
			return usagef("config file: %v", err)
		}
		return usagef("config file %s: %v", path, parseError(err))
	}
	var errs []error
	seen := map[string]bool{}
	for _, k := range v.AllKeys() {
		top, _, _ := strings.Cut(k, ".")
		if _, ok := lookup(top); ok || seen[top] {
			continue
		}
		seen[top] = true
		if u := leftOutError(top, path); u != nil {
			errs = append(errs, u)
			continue
		}
		errs = append(errs, unknownName("setting", top, path, keys()))
	}
	if v.InConfig("config") {
		errs = append(errs, usagef("config file %s: the config setting cannot be set inside a config file", path))
	}
	return errors.Join(errs...)
}

// parseError says where in the file a TOML syntax error is (YAML's and
// JSON's errors already carry the line).
func parseError(err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("line %d, column %d: %v", row, col, de)
	}
	return err
}

func keys() []string {
	out := make([]string, len(table))
	for i, s := range Settings() {
		out[i] = s.Key
	}
	return out
}

// defaultTmpDir is where heartbeat files go when worker_tmp_dir is empty:
// tmpfs when the host has /dev/shm, so a heartbeat is never a disk write.
func defaultTmpDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// newFlagSet builds the flags from the table, plus the meta flags.
func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("multiserve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	for _, s := range Settings() {
		if s.Flag == "" {
			continue
		}
		short, _, _ := strings.Cut(s.Help, "\n")
		short = strings.ReplaceAll(short, "`", "") // pflag reads `x` as the argument's name
		switch d := s.Default.(type) {
		case int:
			fs.IntP(s.Flag, s.Shorthand, d, short)
		case int64:
			fs.Int64P(s.Flag, s.Shorthand, d, short)
		case bool:
			fs.BoolP(s.Flag, s.Shorthand, d, short)
		case string:
			fs.StringP(s.Flag, s.Shorthand, d, short)
		case []string:
			if s.Repeat {
				fs.StringArrayP(s.Flag, s.Shorthand, d, short)
			} else {
				fs.StringSliceP(s.Flag, s.Shorthand, d, short)
			}
		case time.Duration:
			dv := durationValue(d)
			fs.VarP(&dv, s.Flag, s.Shorthand, short)
		default:
			panic(fmt.Sprintf("config: setting %s has a flag but type %T", s.Key, s.Default))
		}
	}
	fs.Bool("print-config", false, "Print every setting, its value and where it came from, then exit.")
	fs.Bool("check-config", false, "Validate the configuration and the application, then exit.")
	fs.BoolP("version", "v", false, "Print the version and exit.")
	fs.BoolP("help", "h", false, "Show this help and exit.")
	return fs
}

var metaFlags = []string{"print-config", "check-config", "version", "help"}

// durationValue is a flag that takes "30s" or, as gunicorn users write it,
// a plain number of seconds.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }
func (d *durationValue) Set(s string) error {
	v, err := toDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v.(time.Duration))
	return nil
}

// flagError turns pflag's parse errors into one-line UsageErrors.
func flagError(err error) error {
	var notExist *pflag.NotExistError
	var invalid *pflag.InvalidValueError
	var needs *pflag.ValueRequiredError
	switch {
	case errors.As(err, &notExist):
		if u := leftOutError(specifiedFlag(notExist), ""); u != nil {
			return u
		}
		if shorts := notExist.GetSpecifiedShortnames(); shorts != "" {
			return &UsageError{Setting: "-" + notExist.GetSpecifiedName()[:1], unknown: "flag",
				Reason: "short flags are " + shorthands()}
		}
		return unknownName("flag", "--"+notExist.GetSpecifiedName(), "", flagNames())
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		u := &UsageError{Setting: f.Name, Value: invalid.GetValue(), Source: "--" + f.Name, Reason: invalid.Unwrap().Error()}
		if s, ok := settingOfFlag(f.Name); ok {
			u.Setting = s.Key
			if _, cerr := convert(s.Default, invalid.GetValue()); cerr != nil {
				u.Reason = cerr.Error() // "want an integer" rather than strconv's wording
			}
		}
		return u
	case errors.As(err, &needs):
		return usagef("flag --%s needs a value", needs.GetFlag().Name)
	}
	return usagef("%v", err)
}

// specifiedFlag is the unknown flag as typed: "--name" or "-x".
func specifiedFlag(e *pflag.NotExistError) string {
	if e.GetSpecifiedShortnames() != "" {
		return "-" + e.GetSpecifiedName()[:1]
	}
	return "--" + e.GetSpecifiedName()
}

func settingOfFlag(name string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Flag == name {
			return s, true
		}
	}
	return Setting{}, false
}

// shorthands lists the one-letter flags: "-b -c ...".
func shorthands() string {
	var out []string
	fs := newFlagSet()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Shorthand != "" {
			out = append(out, "-"+f.Shorthand)
		}
	})
	return strings.Join(out, " ")
}

// flagNames are the long flags, with dashes, for suggestions.
func flagNames() []string {
	var out []string
	for _, s := range Settings() {
		if s.Flag != "" {
			out = append(out, "--"+s.Flag)
		}
	}
	for _, m := range metaFlags {
		out = append(out, "--"+m)
	}
	return out
}

// usage is the --help text: flags grouped by section, as the docs are.
func usage(fs *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("usage: multiserve [flags] [APP]      serve APP\n" +
		"       multiserve ctl [flags] COMMAND  talk to a running arbiter (multiserve ctl --help)\n" +
		"       multiserve settings             print every setting as Markdown (docs/settings.md)\n" +
		"       multiserve help                 this help\n\n" +
		"APP is the application to serve: hello (default), echo, sim, static:DIR, or a name your program registered.\n" +
		"Every setting can also come from MULTISERVE_<SETTING> in the environment or from the config file (-c);\n" +
		"precedence is flag > environment > file > default. All settings: docs/settings.md.\n")
	for _, sec := range sections {
		writeFlagGroup(&b, fs, sec, func(s Setting) bool { return s.Section == sec && s.Flag != "" })
	}
	writeFlagGroup(&b, fs, "Other", nil)
	return b.String()
}

func writeFlagGroup(b *strings.Builder, fs *pflag.FlagSet, title string, keep func(Setting) bool) {
	sub := pflag.NewFlagSet(title, pflag.ContinueOnError)
	sub.SortFlags = false
	if keep == nil {
		for _, m := range metaFlags {
			sub.AddFlag(fs.Lookup(m))
		}
	}
	for _, s := range Settings() {
		if keep != nil && keep(s) {
			sub.AddFlag(fs.Lookup(s.Flag))
		}
	}
	if sub.HasFlags() {
		fmt.Fprintf(b, "\n%s:\n%s", title, sub.FlagUsages())
	}
}

// Print writes every setting with its value and source, aligned, for
// --print-config.
func (l *Loaded) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "# setting\tvalue\tsource")
	for _, s := range Settings() {
		val := formatValue(l.Config.get(s.Key))
		if val == "" {
			val = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, val, l.Sources[s.Key])
	}
	tw.Flush()
}
