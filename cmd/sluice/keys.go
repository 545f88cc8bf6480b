package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
)

// newKeysCmd returns `sluice keys`: the keys that encrypt secret files
// (docs/secrets.md), operated on the store directly like `sluice admin`.
func newKeysCmd(env Env) *cobra.Command {
	var storeURL, dataDir, keyFile string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keys that encrypt secret files",
		Long: `Manage the keys that encrypt secret files (*.secret.*, docs/secrets.md).

Like sluice admin, it works on the store directly (--store, env SLUICE_STORE;
a bbolt file is locked by a running server: stop it first) with the local
key file of the servers (--secrets-key-file, default <data-dir>/secrets.key).`,
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", "", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db; env SLUICE_STORE)")
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir, "directory of the default bbolt store and key file")
	cmd.PersistentFlags().StringVar(&keyFile, "secrets-key-file", "", "key file of the local keyring (default <data-dir>/secrets.key)")

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new key-encryption key and re-wrap every key under it",
		Long: `Add a new key-encryption key to the key file, make it the active one, and
re-wrap under it every store key (which wrap the data keys of the secret
file revisions), without rewriting any content; new revisions get a new
store key. Every historical revision stays readable. Afterwards the old
key lines may be deleted from the key file (on every server) once every
server has the new file: the output lists the ids. Running servers read
the file again when they meet the new key id. It is safe to run again
after a failure.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(c.Context(), adminTimeout)
			defer cancel()
			path := keyFile
			if path == "" {
				path = filepath.Join(dataDir, secretKeyFile)
			}
			kr, err := localkey.Open(path, false)
			if err != nil {
				return err
			}
			old := kr.IDs()
			u := storeURL
			if u == "" {
				u = env.Getenv(envTwin("store"))
			}
			if u == "" {
				u = "bolt://" + filepath.Join(dataDir, "sluice.db")
			}
			st, err := openBackend(ctx, u, logOptions{Format: "text"}.newLogger(env.Stderr), env.Getenv)
			if err != nil {
				return err
			}
			defer st.Close()
			newID, err := kr.Rotate()
			if err != nil {
				return err
			}
			rot, err := secrets.NewKeychain(st.Records(), kr).Rotate(ctx)
			if err != nil {
				return fmt.Errorf("keys rotate (the key file already holds the new key %s; run it again): %w", newID, err)
			}
			// Key ids only: the audit never holds key material or values.
			_, _ = access.NewAudit(st.Records(), 0).Record(ctx, access.Entry{Time: time.Now(), Actor: "sluice keys", Action: "secret.rotate",
				Target: "keys/" + rot.KEK, Outcome: access.OutcomeAllowed, Reason: fmt.Sprintf("re-wrapped %d store keys; current %s", len(rot.Rewrapped), rot.Current)})
			out := struct {
				secrets.Rotation
				Retirable []string `json:"retirable_keys"`
			}{rot, old}
			b, _ := json.MarshalIndent(out, "", "  ")
			_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
			return err
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}
