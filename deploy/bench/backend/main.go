package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19000", "address to listen on")
	size := flag.Int("size", 64, "response body size in bytes of / (and every path but /4k and /64k)")
	flag.Parse()
	bodies := map[string][]byte{"/4k": makeBody(4 << 10), "/64k": makeBody(64 << 10)}
	def := makeBody(*size)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body) // a POST's body is read, as a real upstream would
		}
		body, ok := bodies[r.URL.Path]
		if !ok {
			body = def
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"text/plain"}
		hd["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}

func makeBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
