package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// rawBench is the ceiling the ZooKeeper transport is measured against: the
// same go-zookeeper client, with no Sluice in between. Each of o.clients
// sessions keeps a data watch on one node and, when it fires, reads the node
// again (which re-arms the watch) — the least any watcher must do to learn
// a new value. The publisher is a bare Set.
func rawBench(ctx context.Context, o watchOptions) (*watchResult, error) {
	servers := strings.Split(o.zk, ",")
	dial := func() (*zk.Conn, error) {
		c, events, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return nil, err
		}
		go func() {
			for range events { // drained so the client never blocks on it
			}
		}()
		return c, nil
	}
	pub, err := dial()
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	node := o.zkRoot + "-raw"
	if _, err := pub.Create(node, []byte("0"), 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return nil, fmt.Errorf("create %s: %w", node, err)
	}
	defer pub.Delete(node, -1)

	arrivals := make([][]atomic.Int64, o.publishes+1)
	for i := range arrivals {
		arrivals[i] = make([]atomic.Int64, o.clients)
	}
	counts := make([]atomic.Int32, o.publishes+1)

	conns := make([]*zk.Conn, o.clients)
	var wg sync.WaitGroup
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close() // ends the watch loops below
			}
		}
		wg.Wait()
	}()
	openStart := time.Now()
	for i := range o.clients {
		c, err := dial()
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		conns[i] = c
		_, _, ch, err := c.GetW(node)
		if err != nil {
			return nil, fmt.Errorf("client %d: watch: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-ch:
					if !ok || ev.Err != nil || ev.Type == zk.EventNotWatching {
						return
					}
				}
				data, _, next, err := c.GetW(node)
				if err != nil {
					return
				}
				if seq, err := strconv.Atoi(string(data)); err == nil && seq >= 1 && seq <= o.publishes {
					if arrivals[seq][i].CompareAndSwap(0, time.Now().UnixNano()) {
						counts[seq].Add(1)
					}
				}
				ch = next
			}
		}()
	}
	openElapsed := time.Since(openStart)
	res, err := measure(ctx, o, arrivals, counts, func(seq int) error {
		_, err := pub.Set(node, []byte(strconv.Itoa(seq)), -1)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.Transport, res.Store, res.OpenElapsed = "raw", "zookeeper", openElapsed
	return res, nil
}
