package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkGetFile measures an authenticated raw file read over loopback
// HTTP: token lookup, authorization, head and file reads on bbolt, log line,
// metrics.
func BenchmarkGetFile(b *testing.B) {
	e := newEnv(b)
	var sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sb, "key%d: value\n", i)
	}
	e.mustService("orders", map[string]string{"db.yaml": sb.String()})
	url := e.http.URL + "/v1/services/orders/files/db.yaml"
	client := e.http.Client()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sendOK(b, client, "GET", url, e.admin, nil)
	}
}

// BenchmarkPublishFile measures PUT of one file: a new revision on bbolt
// plus its audit entry.
func BenchmarkPublishFile(b *testing.B) {
	e := newEnv(b)
	e.mustService("orders", nil)
	url := e.http.URL + "/v1/services/orders/files/db.yaml"
	client := e.http.Client()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		sendOK(b, client, "PUT", url, e.admin, strings.NewReader(fmt.Sprintf("n: %d\n", i)))
	}
}

// sendOK sends one request with token, reads and discards the answer and
// fails b unless it is 200: the least a benchmark loop can do per request.
func sendOK(b *testing.B, client *http.Client, method, url, token string, body io.Reader) {
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: status %d", method, url, resp.StatusCode)
	}
}
