// Package version holds the build's version string, set with
// -ldflags "-X github.com/multiserve/multiserve/internal/version.Version=...".
package version

// Version is reported by the banner, --version and the Server header's logs.
var Version = "0.1.0-dev"
