package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "gray" {
		return runGray(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "watch" {
		return errors.New("usage: sluice-bench watch|gray [flags] (see -h)")
	}
	o, err := parseWatchFlags(args[1:], stderr)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := watchBench(ctx, o, log)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.print(stdout)
	return nil
}

func parseWatchFlags(args []string, stderr io.Writer) (watchOptions, error) {
	o := defaultWatchOptions()
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.transport, "transport", o.transport, "zookeeper, http, or raw (bare go-zookeeper watchers: the ceiling for zookeeper)")
	fs.StringVar(&o.zk, "zk", o.zk, "ZooKeeper servers, comma-separated (required for --transport zookeeper)")
	fs.StringVar(&o.zkRoot, "zk-root", o.zkRoot, "root node for the run (a fresh one keeps runs apart)")
	fs.IntVar(&o.clients, "clients", o.clients, "number of SDK clients (1-5000)")
	fs.IntVar(&o.publishes, "publishes", o.publishes, "number of publishes (1-10000)")
	fs.DurationVar(&o.pause, "pause", o.pause, "pause between publishes")
	fs.DurationVar(&o.publishTimeout, "publish-timeout", o.publishTimeout, "how long one publish waits for every client")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on the whole run")
	fs.IntVar(&o.openParallel, "open-parallel", o.openParallel, "clients opened concurrently")
	fs.BoolVar(&o.register, "register", o.register, "register every client as an instance")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.BoolVar(&o.verbose, "v", false, "log debug lines")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.validate()
}

// runGray runs `sluice-bench gray` with args.
func runGray(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseGrayFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := grayBench(ctx, o, log)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.print(stdout)
	return nil
}
