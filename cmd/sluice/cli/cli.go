package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Env is what the commands use of the process: streams and environment.
// Tests pass their own. Getenv must not be nil.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Defaults of the connection flags.
const (
	// DefaultServer is the admin server address used when neither --server
	// nor SLUICE_SERVER is set.
	DefaultServer = "http://127.0.0.1:7070"
	// DefaultDataDir is where the server writes admin.token by default.
	DefaultDataDir = "./sluice-data"
	// DefaultTimeout bounds one HTTP call of the client.
	DefaultTimeout = 30 * time.Second
	// TokenFile is the bootstrap admin token's file name inside the data dir.
	TokenFile = "admin.token"
)

// Commands returns the client verbs to add to the root command. Each verb
// carries the connection flags (--server, --token, --data-dir, --timeout,
// -o) as persistent flags; cobra parses the whole command line with the
// verb's flags, so they may go before or after the verb:
// `sluice --server http://h:7070 get orders db.yaml`.
func Commands(env Env) []*cobra.Command {
	a := &app{env: env}
	cmds := []*cobra.Command{
		a.servicesCmd(),
		a.getCmd(serviceScope),
		a.putCmd(serviceScope),
		a.editCmd(serviceScope),
		a.publishCmd(serviceScope),
		a.historyCmd(serviceScope),
		a.diffCmd(serviceScope),
		a.rollbackCmd(serviceScope),
		a.watchCmd(serviceScope),
		a.linkCmd(),
		a.unlinkCmd(),
		a.sharedCmd(),
		a.instancesCmd(),
		a.tokenCmd(),
		a.whoamiCmd(),
		a.auditCmd(),
		a.pinCmd(),
		a.routesCmd(),
		a.changeCmd(),
		a.policyCmd(),
		a.grayCmd(),
	}
	for _, c := range cmds {
		a.addGlobalFlags(c)
		a.explainErrors(c)
		a.addCompletions(c, c.Name())
	}
	return cmds
}

// app holds the state of one command-line run: the environment and the
// values of the connection flags.
type app struct {
	env     Env
	server  string
	token   string
	dataDir string
	timeout time.Duration
	output  string
	// dryRun and emergency are the write flags of the publishing commands.
	dryRun    bool
	emergency string

	// Set by client: whether a token is sent and where it came from
	// (never the token), for the hint on a 401.
	sentToken   bool
	tokenSource string
}

func (a *app) addGlobalFlags(c *cobra.Command) {
	f := c.PersistentFlags()
	f.StringVar(&a.server, "server", "", "admin server URL (env SLUICE_SERVER; default "+DefaultServer+")")
	f.StringVar(&a.token, "token", "", "API token (env SLUICE_TOKEN; default: the file admin.token in --data-dir)")
	f.StringVar(&a.dataDir, "data-dir", "", "server data directory holding admin.token (env SLUICE_DATA_DIR; default "+DefaultDataDir+")")
	f.DurationVar(&a.timeout, "timeout", DefaultTimeout, "timeout of each HTTP call")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
}

// client resolves the connection flags and returns the API client. It
// remembers where the token came from, for the hint on a 401.
func (a *app) client() (*api.Client, error) {
	switch a.output {
	case "table", "json":
	default:
		return nil, fmt.Errorf("-o %q: must be table or json", a.output)
	}
	server := firstNonEmpty(a.server, a.env.Getenv("SLUICE_SERVER"), DefaultServer)
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: must be an http:// or https:// URL such as %s", server, DefaultServer)
	}
	token, source, err := a.resolveToken()
	if err != nil {
		return nil, err
	}
	if a.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", a.timeout)
	}
	a.sentToken, a.tokenSource = token != "", source
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: a.timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return api.New(api.Config{
		Servers: []string{server}, Token: token, HTTPClient: &http.Client{Transport: tr}, Timeout: a.timeout,
		RetryMin: time.Second, RetryMax: 15 * time.Second, UserAgent: "sluice-cli",
	})
}

// resolveToken returns the token and a description of where it came from
// (never the token itself): --token, then SLUICE_TOKEN, then the bootstrap
// file. No token at all is not an error here: the server answers 401 and
// the client explains where it looked.
func (a *app) resolveToken() (token, source string, err error) {
	if a.token != "" {
		return a.token, "--token", nil
	}
	if t := a.env.Getenv("SLUICE_TOKEN"); t != "" {
		return strings.TrimSpace(t), "SLUICE_TOKEN", nil
	}
	dir := firstNonEmpty(a.dataDir, a.env.Getenv("SLUICE_DATA_DIR"), DefaultDataDir)
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", "none of --token, SLUICE_TOKEN or " + path, nil
	case err != nil:
		return "", "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), path, nil
}

func (a *app) json() bool { return a.output == "json" }

func (a *app) stdout() io.Writer { return a.env.Stdout }

func (a *app) stderr() io.Writer { return a.env.Stderr }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// scope is where a family of routes lives: services or shared groups. Both
// have files, revisions, diff, rollback and watch under the same sub-paths.
type scope string

// The two scopes.
const (
	serviceScope scope = "services"
	groupScope   scope = "shared"
)

// noun names one member of the scope in messages.
func (s scope) noun() string {
	if s == groupScope {
		return "group"
	}
	return "service"
}

// plural names the members in messages.
func (s scope) plural() string {
	if s == groupScope {
		return "shared groups"
	}
	return "services"
}

// verb is the CLI verb of the scope.
func (s scope) verb() string { return string(s) }

// kind is the kind of the scope's members.
func (s scope) kind() configsvc.Kind {
	if s == groupScope {
		return configsvc.KindGroup
	}
	return configsvc.KindService
}

// ref names a member of the scope.
func (s scope) ref(name string) configsvc.Ref { return configsvc.Ref{Kind: s.kind(), Name: name} }
