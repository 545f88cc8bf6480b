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
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
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
		req, _ := http.NewRequest("PUT", url, strings.NewReader(fmt.Sprintf("n: %d\n", i)))
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
