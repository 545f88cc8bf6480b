package fasthttpengine

import (
	"context"
	"net"
)

// WrapUpstreamDial wraps the engine's upstream dialer (before it serves).
func WrapUpstreamDial(e *Engine, wrap func(net.Conn) net.Conn) {
	dial := e.pools.dial
	e.pools.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return wrap(c), nil
	}
}
