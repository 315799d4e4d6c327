//go:build linux

// datasync_linux.go: fdatasync for the log's segments.
package main

import (
	"io/fs"
	"os"
	"syscall"
)

// syncData makes what was written to f durable with fdatasync: the data, and of the
// metadata only what reading it back needs (the size). That is all a log segment's
// appends need; fsync also writes the file's times, a second journal write for nothing.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for serr = syscall.Fdatasync(int(fd)); serr == syscall.EINTR; serr = syscall.Fdatasync(int(fd)) {
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: serr}
	}
	return nil
}
