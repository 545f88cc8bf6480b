// Command bareproxy is the calibration peer of the proxy benchmark
// (deploy/bench/proxy.sh): a bare fasthttp forwarder (fasthttp's Server
// and HostClient with their defaults, no route logic, no header
// rewriting, no timeouts), the most a fasthttp-based data plane can reach
// on the machine. Issue 16's calibration measured it at 0.89-0.90x nginx.
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19005", "address to listen on")
	upstream := flag.String("upstream", "127.0.0.1:19000", "the backend's address")
	flag.Parse()
	hc := &fasthttp.HostClient{Addr: *upstream, MaxConns: 4096}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	log.Fatal(srv.ListenAndServe(*addr))
}
