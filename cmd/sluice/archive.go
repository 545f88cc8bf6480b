package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/archive"
)

// archiveStore resolves a store URL as `sluice admin` does: the flag, its
// environment twin SLUICE_STORE, or the default bbolt file in dataDir.
func archiveStore(env Env, flag, dataDir string) string {
	if flag != "" {
		return flag
	}
	if u := env.Getenv(envTwin("store")); u != "" {
		return u
	}
	return "bolt://" + filepath.Join(dataDir, "sluice.db")
}

// openArchiveStore opens the store at u, without publish validation (an
// import writes history as it was, see configsvc.Importer).
func openArchiveStore(ctx context.Context, env Env, u string) (configsvc.Store, error) {
	return openBackend(ctx, u, logOptions{Format: "text"}.newLogger(env.Stderr), env.Getenv)
}

// printJSON writes v to w as indented JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

const archiveHelp = `The archive holds every service and shared group with every revision the
store retains (number, author, time, message, content), their grays, the
links, every record collection (API tokens, stored hashed; sessions, debug
pins, approval policies and changes …) and the audit log: a versioned,
checksummed text stream (format: package configsvc/archive). File content
is carried as the bytes the store holds, never decoded. Live instances are
not exported: they register again.`

// newExportCmd is `sluice export`: a store to an archive.
func newExportCmd(env Env) *cobra.Command {
	var storeURL, dataDir, output string
	c := &cobra.Command{
		Use:   "export [--store URL] [-o FILE]",
		Short: "Write the whole store (history, grays, tokens, audit) to an archive",
		Long: "Write the whole store to an archive on standard output (or -o FILE).\n\n" + archiveHelp + `

Export reads the store directly, like sluice admin: a bbolt file is locked
by a running server (stop it first, or export from ZooKeeper while servers
run). A summary goes to standard error. Restore with sluice import; see
docs/operations.md, "Backups".`,
		Example: "  sluice export --store bolt://./sluice-data/sluice.db > backup.sluice\n" +
			"  sluice export --store zk://zk1:2181,zk2:2181/sluice -o backup.sluice",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := openArchiveStore(ctx, env, archiveStore(env, storeURL, dataDir))
			if err != nil {
				return err
			}
			defer st.Close()
			w, commit, abort, err := archiveOutput(env, output)
			if err != nil {
				return err
			}
			counts, err := archive.Export(ctx, st, w, archive.ExportOptions{})
			if err == nil {
				err = commit()
			} else {
				abort()
			}
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(env.Stderr, "exported %d services, %d groups, %d revisions, %d grays, %d links, %d records, %d log entries\n",
				counts.Services, counts.Groups, counts.Revisions, counts.Grays, counts.Links, counts.Records, counts.LogEntries)
			return nil
		},
	}
	c.Flags().StringVar(&storeURL, "store", "", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db; env SLUICE_STORE)")
	c.Flags().StringVar(&dataDir, "data-dir", defaultDataDir, "directory of the default bbolt store")
	c.Flags().StringVarP(&output, "output", "o", "", "write the archive to FILE (written beside it, renamed when complete) instead of standard output")
	return c
}

// archiveOutput returns where an export writes: standard output, or a
// temporary file beside path that commit renames to path once complete
// and abort removes (so a failed export never leaves a truncated archive
// under its name).
func archiveOutput(env Env, path string) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "" {
		return env.Stdout, func() error { return nil }, func() {}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export: %w", err)
	}
	abort = func() {
		f.Close()
		os.Remove(f.Name())
	}
	commit = func() error {
		if err := f.Sync(); err != nil {
			abort()
			return err
		}
		if err := f.Close(); err != nil {
			os.Remove(f.Name())
			return err
		}
		return os.Rename(f.Name(), path)
	}
	return f, commit, abort, nil
}

// newImportCmd is `sluice import`: an archive into a store.
func newImportCmd(env Env) *cobra.Command {
	var storeURL, dataDir, input, merge, reason string
	c := &cobra.Command{
		Use:   "import [--store URL] [--merge none|keep] [-i FILE]",
		Short: "Load an archive (from sluice export) into a store",
		Long: "Load an archive from standard input (or -i FILE) into a store.\n\n" + archiveHelp + `

Every record is checked (checksum, order, limits) before it is written; a
damaged archive is refused at the line that is wrong. A store that holds
anything is refused unless --merge says how:

  none   (default) refuse a store that holds any service, group, record or
         log entry
  keep   add what the store lacks, keep what it has: a service or group it
         holds keeps its own history, grays and links; a record whose id
         it holds keeps its data; audit entries are appended after its own

An import that was interrupted (killed, connection lost) is continued by
running the same command again with the same archive: it skips what was
written, writes the rest, and ends as an uninterrupted import would (no
revision twice, none half-written). When done the store gets a new
generation, so servers, proxies and SDKs reload what it holds. Run it while
no server writes to the store. The result is printed as JSON.`,
		Example: "  sluice import --store zk://zk1:2181,zk2:2181/sluice < backup.sluice\n" +
			"  sluice import --store bolt://./restored.db --merge keep -i backup.sluice",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			mode, err := archive.ParseMerge(merge)
			if err != nil {
				return fmt.Errorf("--merge: %w", err)
			}
			var r io.Reader = env.Stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			st, err := openArchiveStore(ctx, env, archiveStore(env, storeURL, dataDir))
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := archive.Import(ctx, st, r, archive.ImportOptions{Merge: mode, Reason: reason,
				Logger: logOptions{Format: "text"}.newLogger(env.Stderr)})
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			return printJSON(env.Stdout, res)
		},
	}
	c.Flags().StringVar(&storeURL, "store", "", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db; env SLUICE_STORE)")
	c.Flags().StringVar(&dataDir, "data-dir", defaultDataDir, "directory of the default bbolt store")
	c.Flags().StringVarP(&input, "input", "i", "", "read the archive from FILE instead of standard input")
	c.Flags().StringVar(&merge, "merge", "none", "how to treat a store that is not empty: none (refuse) or keep (the store's own services, groups and records win)")
	c.Flags().StringVar(&reason, "reason", "", "recorded with the store's new generation (default: the archive's id and creation time)")
	return c
}

// migrateResult is what `sluice migrate` prints.
type migrateResult struct {
	archive.ImportResult
	// Verified is set when both stores were exported again afterwards
	// and hold the same content.
	Verified bool `json:"verified"`
}

// newMigrateCmd is `sluice migrate`: export piped into import, in one
// process.
func newMigrateCmd(env Env) *cobra.Command {
	var from, to, merge string
	var verify bool
	c := &cobra.Command{
		Use:   "migrate --from URL --to URL [--merge none|keep]",
		Short: "Copy a whole store into another one (bbolt to ZooKeeper and back)",
		Long: `Copy a whole store into another: sluice export --store FROM piped into
sluice import --store TO, in one process, with the same archive format,
checks, merge modes and resumption (run it again after an interruption).

` + archiveHelp + `

With an empty target (--merge none) both stores are exported again
afterwards and compared: the result says "verified": true when the target
holds exactly what the source does. Stop the servers of the source first
(a bbolt file is locked by its server), and start the new servers on the
target once it is done. The ZooKeeper digest identity (SLUICE_ZK_DIGEST)
is used for either store. See docs/operations.md, "From make run to an
ensemble".`,
		Example: "  sluice migrate --from bolt://./sluice-data/sluice.db --to zk://zk1:2181,zk2:2181,zk3:2181/sluice\n" +
			"  sluice migrate --from zk://zk1:2181/sluice --to bolt://./sluice-data/sluice.db",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if from == "" || to == "" {
				return errors.New("migrate needs --from and --to")
			}
			if from == to {
				return fmt.Errorf("--from and --to are the same store %s", redactURL(from))
			}
			mode, err := archive.ParseMerge(merge)
			if err != nil {
				return fmt.Errorf("--merge: %w", err)
			}
			src, err := openArchiveStore(ctx, env, from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			defer src.Close()
			dst, err := openArchiveStore(ctx, env, to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			defer dst.Close()
			res, err := migrate(ctx, src, dst, mode, logOptions{Format: "text"}.newLogger(env.Stderr))
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			out := migrateResult{ImportResult: res}
			if verify && mode == archive.MergeNone {
				if err := verifyStores(ctx, src, dst); err != nil {
					return fmt.Errorf("migrate: verify: the target does not hold what the source does: %w", err)
				}
				out.Verified = true
			}
			return printJSON(env.Stdout, out)
		},
	}
	c.Flags().StringVar(&from, "from", "", "the store to copy: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT")
	c.Flags().StringVar(&to, "to", "", "the store to copy into")
	c.Flags().StringVar(&merge, "merge", "none", "how to treat a target that is not empty: none (refuse) or keep (its own services, groups and records win)")
	c.Flags().BoolVar(&verify, "verify", true, "with an empty target, export both stores afterwards and compare them")
	return c
}

// migrate exports src into a pipe that an import into dst reads. The
// import's error comes first: an export that failed because the import
// stopped reading says only that the pipe closed.
func migrate(ctx context.Context, src, dst configsvc.Store, mode archive.Merge, logger *slog.Logger) (archive.ImportResult, error) {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	var exportErr, importErr error
	g.Go(func() error {
		_, exportErr = archive.Export(gctx, src, pw, archive.ExportOptions{})
		pw.CloseWithError(exportErr)
		return exportErr
	})
	var res archive.ImportResult
	g.Go(func() error {
		res, importErr = archive.Import(gctx, dst, pr, archive.ImportOptions{Merge: mode, Logger: logger})
		// An import that stops early must not leave the export blocked.
		pr.CloseWithError(errors.Join(importErr, io.ErrClosedPipe))
		return importErr
	})
	_ = g.Wait()
	if importErr != nil {
		return res, importErr
	}
	return res, exportErr
}

// verifyStores exports both stores at once and compares the archives.
func verifyStores(ctx context.Context, a, b configsvc.Store) error {
	ra, wa := io.Pipe()
	rb, wb := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range []struct {
		st configsvc.Store
		w  *io.PipeWriter
	}{{a, wa}, {b, wb}} {
		g.Go(func() error {
			_, err := archive.Export(gctx, p.st, p.w, archive.ExportOptions{})
			p.w.CloseWithError(err)
			return nil // a failed export shows in Compare
		})
	}
	err := archive.Compare(ra, rb)
	ra.CloseWithError(io.ErrClosedPipe)
	rb.CloseWithError(io.ErrClosedPipe)
	_ = g.Wait()
	return err
}
