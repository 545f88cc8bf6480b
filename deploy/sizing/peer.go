package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// peerEnv makes this program the broadcaster child process.
const peerEnv = "SLUICE_SIZING_PEER"

// broadcaster is the ceiling the server is measured against: a minimal Go
// SSE broadcaster on net/http, the textbook shape. Each stream (GET
// /t/{topic}) is one handler with a one-event channel and a heartbeat; POST
// /publish?topic=T writes one event, as large as the server's revision
// event, to every stream of T.
type broadcaster struct {
	mu     sync.Mutex
	topics map[string]map[chan []byte]struct{}
	seq    int
}

func (b *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/t/"):
		topic := strings.TrimPrefix(r.URL.Path, "/t/")
		ch := make(chan []byte, 1)
		b.mu.Lock()
		if b.topics[topic] == nil {
			b.topics[topic] = map[chan []byte]struct{}{}
		}
		b.topics[topic][ch] = struct{}{}
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			delete(b.topics[topic], ch)
			b.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		io.WriteString(w, ": ok\n\n")
		fl.Flush()
		// A heartbeat as the server's (15 s), so that idle streams stay
		// equally alive on both sides.
		ping := time.NewTicker(15 * time.Second)
		defer ping.Stop()
		for {
			select {
			case <-ping.C:
				if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
					return
				}
				fl.Flush()
			case ev := <-ch:
				if _, err := w.Write(ev); err != nil {
					return
				}
				fl.Flush()
			case <-r.Context().Done():
				return
			}
		}
	case r.Method == http.MethodPost && r.URL.Path == "/publish":
		topic := r.URL.Query().Get("topic")
		b.mu.Lock()
		b.seq++
		ev := fmt.Appendf(nil, "id: %d\nevent: revision\ndata: %s\n\n", b.seq, peerPayload(b.seq))
		for ch := range b.topics[topic] {
			select {
			case ch <- ev:
			default: // a stream still writing the previous one
			}
		}
		b.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

// peerPayload is JSON of about the size of the server's revision event for
// a one-file publish of the sizing tool.
func peerPayload(n int) string {
	return fmt.Sprintf(`{"number":%d,"time":"%s","author":"sizing","message":"sizing run","generation":"0123456789abcdef","publish_id":"0123456789abcdef","parent":"fedcba9876543210","changes":[{"file":"sizing.txt","content":"c2l6aW5nIHJ1biAyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMDAwMDAwMFoK"}]}`,
		n, time.Now().UTC().Format(time.RFC3339Nano))
}

// servePeer is the child process: it serves the broadcaster on a loopback
// port, prints the address, and exits when its stdin closes (the parent
// ended) or after limit.
func servePeer(limit time.Duration) error {
	if _, err := raiseFileLimit(1 << 16); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &broadcaster{topics: map[string]map[chan []byte]struct{}{}}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	time.AfterFunc(limit, func() { srv.Close() })
	fmt.Println(ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// peer is the broadcaster child process as the parent sees it.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

// startPeer starts this program again as the broadcaster.
func startPeer(ctx context.Context, limit time.Duration) (*peer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), peerEnv+"="+limit.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("broadcaster: %w", err)
	}
	return &peer{cmd: cmd, stdin: stdin, addr: strings.TrimSpace(line)}, nil
}

// rss returns the child's resident set size from /proc (Linux).
func (p *peer) rss() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

func (p *peer) publish(ctx context.Context, topic string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+"/publish?topic="+topic, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("broadcaster publish: %s", resp.Status)
	}
	return nil
}

// stop ends the child and waits for it.
func (p *peer) stop() {
	p.stdin.Close()
	p.cmd.Wait()
}
