package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// What version prints for what the build info does not tell.
const (
	develVersion  = "(devel)" // the main module's version when built from a source tree
	unknownCommit = "unknown"
)

// versionInfo is what `sluice version` prints: the build as Go recorded it
// in the binary.
type versionInfo struct {
	// Version is the main module's version: v1.2.3 for `go install
	// …@v1.2.3`, a pseudo-version for a build in a git checkout, "(devel)"
	// when unknown.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, "unknown" when
	// the build did not record one (go build -buildvcs=false, or no VCS).
	Commit string `json:"commit"`
	// CommitTime is the commit's time (RFC 3339), "" when unknown.
	CommitTime string `json:"commit_time,omitempty"`
	// Modified reports a build from a work tree with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Go is the Go version that built the binary.
	Go string `json:"go"`
}

// readVersion turns build info (as debug.ReadBuildInfo returns it) into a
// versionInfo, with "(devel)" and "unknown" for what it lacks.
func readVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: develVersion, Commit: unknownCommit, Go: "unknown"}
	if !ok || bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// write prints v as text (one "key: value" line each) or, for format
// "json", as one JSON object.
func (v versionInfo) write(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "", "text", "table":
	default:
		return fmt.Errorf("-o %q: must be table or json", format)
	}
	commit := v.Commit
	if v.CommitTime != "" {
		commit += " (" + v.CommitTime + ")"
	}
	if v.Modified {
		commit += " with uncommitted changes"
	}
	_, err := fmt.Fprintf(w, "sluice %s\ncommit: %s\ngo: %s\n", v.Version, commit, v.Go)
	return err
}

// addVersion gives root a version subcommand and a --version flag, both
// printing the binary's build info (-o json for JSON).
func addVersion(root *cobra.Command, env Env) {
	var output string
	show := func(format string) error {
		return readVersion(debug.ReadBuildInfo()).write(env.Stdout, format)
	}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Long: "Print the module version (\"(devel)\" for a build from a source tree), the\n" +
			"commit it was built from (\"unknown\" when the build did not record it) and\n" +
			"the Go version, from the build information Go keeps in the binary.\n" +
			"sluice --version prints the same.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return show(output) },
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	root.AddCommand(cmd)

	var asked bool
	root.Flags().BoolVar(&asked, "version", false, "print the version, as the version command does")
	root.Flags().StringVarP(&output, "output", "o", "table", "output format of --version: table or json")
	root.Args = cobra.NoArgs
	root.RunE = func(c *cobra.Command, _ []string) error {
		if asked {
			return show(output)
		}
		return c.Help()
	}
}
