//go:build !linux

// datasync_other.go: where there is no fdatasync, the log's segments are fsynced.
package main

import "os"

func syncData(f *os.File) error { return f.Sync() }
