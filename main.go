// main.go: dispatch. Parse the command line, run a node or a client, exit with a status
// that says what happened (see the exit* constants in config.go).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err != nil {
		return usageError(stderr, err)
	}
	if o.version {
		if len(o.set) > 1 {
			return usageError(stderr, errors.New("-version takes no other flag"))
		}
		printVersion(stdout)
		return exitOK
	}
	if o.set["C"] {
		cfg, err := clientConfigFrom(o)
		if err != nil {
			return usageError(stderr, err)
		}
		return runClient(cfg, os.Stdin, stdout, stderr)
	}
	demoBase := 0
	if o.demo {
		if len(o.set) > 2 || (len(o.set) == 2 && !o.set["p"]) {
			return usageError(stderr, errors.New("-demo takes no other flag than -p"))
		}
		if demoBase, err = strconv.Atoi(strings.TrimPrefix(o.port, ":")); err != nil || demoBase < 1 || demoBase > 65533 {
			return usageError(stderr, fmt.Errorf("-demo -p: want the first of three ports, not %q", o.port))
		}
	}
	var cfg nodeConfig
	if !o.demo {
		if cfg, err = nodeConfigFrom(o); err != nil {
			return usageError(stderr, err)
		}
	}
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	stop := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-signals
		logger.Info("stopping (a leader first hands leadership to another member; signal again to stop at once)", "signal", s.String())
		close(stop)
		s = <-signals
		// Everything acknowledged is already on disk: stopping now is as safe as a crash.
		logger.Warn("stopping at once", "signal", s.String())
		os.Exit(exitFailed)
	}()
	if o.demo {
		return runDemo(demoBase, stdout, stderr, stop)
	}
	if err := runNode(cfg, stdout, logger, stop); err != nil {
		logger.Error(err.Error())
		return exitFailed
	}
	return exitOK
}

// newLogger returns the node's logger: records at level or above, on w, as text
// (key=value) or as one JSON object per line.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "raft: %v\nRun 'raft -h' for help.\n", err)
	return exitUsage
}
