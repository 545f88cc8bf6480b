package sdk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// maxDataKeys bounds the data keys a client keeps in memory; beyond it the
// cache starts over (each key is fetched again when next needed).
const maxDataKeys = 4096

// dataKeyTimeout bounds one data key request.
const dataKeyTimeout = 5 * time.Second

// dataKeys fetches the data keys of secret files from the admin server
// (POST …/datakey, secrets grant) and keeps them in memory only, never in
// the cache file: the SDK holds secret files as their envelopes and opens
// them when a binding decodes them or File is called. It is safe for
// concurrent use.
type dataKeys struct {
	api *api.Client // nil: no admin server to ask
	mu  sync.Mutex
	m   map[[32]byte][]byte // sha256 of the header line → data key
}

// newDataKeys returns the key source for cfg: the admin servers in
// cfg.KeyServers, or the HTTP transport's servers.
func newDataKeys(cfg Config) (*dataKeys, error) {
	servers := cfg.KeyServers
	if len(servers) == 0 {
		servers = cfg.Servers
	}
	d := &dataKeys{m: map[[32]byte][]byte{}}
	if len(servers) == 0 {
		return d, nil
	}
	c, err := api.New(api.Config{Servers: servers, Token: cfg.Token, HTTPClient: cfg.HTTPClient,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, UserAgent: "sluice-sdk", Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("sdk: config: key servers: %w", err)
	}
	d.api = c
	return d, nil
}

func (d *dataKeys) close() error {
	if d == nil || d.api == nil {
		return nil
	}
	return d.api.Close()
}

// reveal returns the plaintext of file k ("name", or "group/name" of a
// linked group) of service svc, given its content as stored: content
// itself for a file that is not secret. A secret file whose content is not
// an envelope bound to that file, or whose key cannot be had, is an error:
// never served otherwise.
func (d *dataKeys) reveal(ctx context.Context, svc, k string, content []byte) ([]byte, error) {
	g, name := splitKey(k)
	if !configsvc.IsSecretFile(name) {
		return content, nil
	}
	ref := configsvc.Service(svc)
	if g != "" {
		ref = configsvc.Group(g)
	}
	h, ct, err := secrets.Parse(content)
	if err != nil {
		return nil, fmt.Errorf("sdk: secret file %s: %w", k, err)
	}
	if h.Ref() != ref || h.File != name {
		return nil, fmt.Errorf("sdk: secret file %s holds the envelope of %s/%s: %w", k, h.Ref(), h.File, secrets.ErrKey)
	}
	line, _ := secrets.HeaderLine(content)
	id := sha256.Sum256([]byte(line))
	d.mu.Lock()
	key := d.m[id]
	d.mu.Unlock()
	if key == nil {
		if d.api == nil {
			return nil, fmt.Errorf("sdk: secret file %s: no admin server to ask for its data key (set Config.KeyServers and a Token with the secrets grant): %w", k, secrets.ErrKey)
		}
		ctx, cancel := context.WithTimeout(ctx, dataKeyTimeout)
		defer cancel()
		if key, err = d.api.DataKey(ctx, ref, line); err != nil {
			return nil, fmt.Errorf("sdk: secret file %s: data key: %w", k, err)
		}
		d.mu.Lock()
		if len(d.m) >= maxDataKeys {
			clear(d.m)
		}
		d.m[id] = key
		d.mu.Unlock()
	}
	return secrets.OpenWithKey(h, ct, key)
}
