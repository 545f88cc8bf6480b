package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/router/routesfile"
)

// validateReport is what `sluice validate -o json` prints.
type validateReport struct {
	Files      int                   `json:"files"`
	Violations []configsvc.Violation `json:"violations"`
}

// newValidateCmd is `sluice validate DIR|FILE…`: the checks a publish makes
// of content (formats, JSON Schemas beside the files, the route schema of
// sluice-system/routes.yaml), run locally without a server, for CI.
func newValidateCmd(env Env) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "validate DIR|FILE…",
		Short: "Check config files locally against their formats and JSON Schemas (no server)",
		Long: "Check config files the way the server checks a publish, without a server:\n" +
			"each file must parse as the format of its extension, and a file F with a\n" +
			"schema file F.schema.json beside it must be valid against that schema (JSON\n" +
			"Schema, draft 2020-12 unless $schema says otherwise; YAML and TOML on their\n" +
			"JSON data model, properties and .env files as objects of strings). Schema\n" +
			"files are checked as schemas; a $ref resolves only to files of the same\n" +
			"directory. A directory stands for a service or shared group checked out with\n" +
			"its files side by side (subdirectories are not read); a file is checked with\n" +
			"the schema beside it. routes.yaml in a directory named sluice-system is checked\n" +
			"against the route schema. Every violation is printed as file:line:column:\n" +
			"pointer: message (keyword); the exit status is 1 when there is one.",
		Example: "  sluice validate ./config/orders\n  sluice validate db.yaml features.json -o json",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: must be table or json", output)
			}
			rep, err := validatePaths(cmd.Context(), args)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printViolations(env.Stdout, rep)
			}
			if len(rep.Violations) > 0 {
				return fmt.Errorf("%d violation(s) in %d file(s) checked", len(rep.Violations), rep.Files)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}

func printViolations(w io.Writer, rep validateReport) {
	for _, v := range rep.Violations {
		fmt.Fprintln(w, v.String())
	}
	if len(rep.Violations) == 0 {
		fmt.Fprintf(w, "%d file(s) valid\n", rep.Files)
	}
}

// validatePaths checks each argument: every file of a directory, or one
// file with the other files of its directory as its tree. Violation file
// names are the paths as given (dir/name).
func validatePaths(ctx context.Context, args []string) (validateReport, error) {
	rep := validateReport{Violations: []configsvc.Violation{}}
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return rep, err
		}
		dir, names := arg, []string(nil)
		if !st.IsDir() {
			dir, names = filepath.Dir(arg), []string{filepath.Base(arg)}
			if err := configsvc.ValidateFileName(names[0]); err != nil {
				return rep, fmt.Errorf("%s: %w", arg, err)
			}
		}
		tree, err := schema.NewFSTree(os.DirFS(dir))
		if err != nil {
			return rep, err
		}
		if names == nil {
			names = tree.Files()
		}
		vs, err := validateTree(ctx, tree, filepath.Base(filepath.Clean(dir)), names)
		if err != nil {
			return rep, err
		}
		for i := range vs {
			vs[i].File = filepath.Join(dir, vs[i].File)
			if vs[i].Schema != "" {
				vs[i].Schema = filepath.Join(dir, vs[i].Schema)
			}
		}
		rep.Files += len(names)
		rep.Violations = append(rep.Violations, vs...)
	}
	return rep, nil
}

// validateTree checks names of tree (a directory named dirName): formats
// first; the files that parse then against their schemas.
func validateTree(ctx context.Context, tree *schema.FSTree, dirName string, names []string) ([]configsvc.Violation, error) {
	var out []configsvc.Violation
	var parsed []string
	for _, name := range names {
		content, err := tree.Read(ctx, name)
		if err != nil {
			return nil, err
		}
		err = format.ValidateContext(ctx, name, content)
		if err == nil && dirName == configsvc.SystemService && name == configsvc.RoutesFile {
			err = routesfile.Validate(configsvc.Service(configsvc.SystemService), name, content)
		}
		var pe *configsvc.ParseError
		var fe *configsvc.FieldError
		switch {
		case errors.As(err, &pe):
			out = append(out, configsvc.Violation{File: name, Line: pe.Line, Column: pe.Column, Keyword: "format", Message: pe.Msg})
		case errors.As(err, &fe):
			out = append(out, configsvc.Violation{File: name, Pointer: fe.Field, Keyword: "routes", Message: fe.Error()})
		case err != nil:
			return nil, err
		default:
			parsed = append(parsed, name)
		}
	}
	vs, err := schema.NewChecker(0).Check(ctx, tree, parsed)
	if err != nil {
		return nil, err
	}
	out = append(out, vs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}
