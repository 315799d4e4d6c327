// demo.go: raft -demo, a three-node cluster in one process and one terminal, with its
// data in a temporary directory: the quickest way to see it work. Ctrl-C stops it and
// removes the data.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// runDemo runs the demo cluster on ports base, base+1 and base+2 until stop is closed,
// and returns the exit status.
func runDemo(base int, stdout, stderr io.Writer, stop <-chan struct{}) int {
	var demoMembers []string
	for i := range 3 {
		demoMembers = append(demoMembers, fmt.Sprintf(":%d", base+i))
	}
	dir, err := os.MkdirTemp("", "raft-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "raft: -demo: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(dir)
	var wg sync.WaitGroup
	errs := make(chan error, len(demoMembers))
	listening := make(chan struct{}, len(demoMembers))
	quit := make(chan struct{})
	for _, id := range demoMembers {
		// The members stop together: no leadership to hand over.
		cfg := nodeConfig{ID: id, Bootstrap: Config{Members: demoMembers}, DataDir: filepath.Join(dir, id[1:]),
			Heartbeat: 30 * time.Millisecond, Election: 150 * time.Millisecond, SnapshotEntries: 100000, NoHandOff: true, MaxMessage: 1 << 20,
			Listening: func() { listening <- struct{}{} }}
		wg.Add(1)
		go func() {
			defer wg.Done()
			logger := newLogger(&linePrefixer{w: stderr, prefix: id + " "}, "text", slog.LevelInfo)
			if err := runNode(cfg, &linePrefixer{w: stdout, prefix: id + " "}, logger, quit); err != nil {
				errs <- err
			}
		}()
	}
	// The banner only once every member listens: a port in use fails the demo first.
	status := exitOK
	for range demoMembers {
		select {
		case <-listening:
			continue
		case <-stop:
		case err := <-errs:
			fmt.Fprintf(stderr, "raft: -demo: %v\n", err)
			status = exitFailed
		}
		close(quit)
		wg.Wait()
		return status
	}
	fmt.Fprintf(stdout, `A three-node cluster is starting on %s, %s and %s (data in %s).
In another terminal, try:
  ./raft -C clientcommand -m "I like beer." -S %[2]s
  ./raft -C clientcommand -m print -S %[1]s
  ./raft -C status -S %[1]s
Ctrl-C stops it and removes the data.
`, demoMembers[0], demoMembers[1], demoMembers[2], dir)
	select {
	case <-stop:
	case err := <-errs:
		fmt.Fprintf(stderr, "raft: -demo: %v\n", err)
		status = exitFailed
	}
	close(quit)
	wg.Wait()
	return status
}

// linePrefixer writes whole lines to w, each with a prefix (the node that wrote it).
type linePrefixer struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := io.WriteString(p.w, p.prefix+string(p.partial[:i+1])); err != nil {
			return 0, err
		}
		p.partial = p.partial[i+1:]
	}
}
