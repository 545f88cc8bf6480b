package zkstore

import (
	"context"
	"net"
	"sync"

	"github.com/sluicehq/sluice/configsvc/zkstore/zkversion"
)

// ServerVersion is one ensemble member's answer to "which ZooKeeper are
// you?".
type ServerVersion struct {
	// Server is the member as configured, host:port.
	Server string
	// Version is its release; zero when it could not be read.
	Version zkversion.Version
	// Err says why the version could not be read: the member is
	// unreachable, or does not allow the srvr four-letter word.
	Err error
	// DataLoss is set when Version is a release with known bugs that lose
	// acknowledged writes: why, in one sentence (zkversion.KnownDataLoss).
	DataLoss string
}

// ServerVersions asks every configured ZooKeeper server for its version
// with the srvr four-letter word (allowed by ZooKeeper's default
// 4lw.commands.whitelist), concurrently, and returns one answer per server
// in the order of Config.Servers. It gives up on a server when ctx ends; it
// never fails as a whole. It is safe for concurrent use.
func (s *Store) ServerVersions(ctx context.Context) []ServerVersion {
	return serverVersions(ctx, s.cfg.Servers)
}

func serverVersions(ctx context.Context, servers []string) []ServerVersion {
	out := make([]ServerVersion, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		addr := srv
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "2181")
		}
		out[i].Server = addr
		wg.Add(1)
		go func(v *ServerVersion) {
			defer wg.Done()
			v.Version, v.Err = zkversion.Ask(ctx, v.Server)
			if v.Err == nil {
				v.DataLoss, _ = zkversion.KnownDataLoss(v.Version)
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}
