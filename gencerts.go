// gencerts.go: raft -C gencerts -d DIR, a quick start for TLS (tls.go). It writes a
// cluster CA and two certificates it signed: one that every member uses (to serve and
// to dial its peers) and one for clients. It never overwrites a file.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	clockSkew    = time.Hour // certificates are valid from a little before now, for clocks behind this one
)

// certFiles are what gencerts writes, in this order.
var certFiles = []string{"ca.crt", "ca.key", "node.crt", "node.key", "client.crt", "client.key"}

// pemFile is one file gencerts writes.
type pemFile struct {
	name string
	data []byte
	mode os.FileMode
}

// gencertsConfigFrom validates -C gencerts: -d, the dir to write to, and -m, more names
// (hosts or IP addresses, comma-separated) for the member certificate.
func gencertsConfigFrom(o options) (clientConfig, error) {
	var others []string
	for f := range o.set {
		if f != "C" && f != "d" && f != "m" {
			others = append(others, "-"+f)
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		return clientConfig{}, fmt.Errorf("-C gencerts takes -d DIR and, optionally, -m NAMES; not %s", strings.Join(others, " "))
	}
	if o.dataDir == "" {
		return clientConfig{}, errors.New("-C gencerts needs the dir to write to: -d DIR")
	}
	cfg := clientConfig{Command: cmdGencerts, Dir: o.dataDir}
	for _, name := range strings.Split(o.message, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if net.ParseIP(name) == nil && strings.ContainsAny(name, ":/ \t") {
			return clientConfig{}, fmt.Errorf("-C gencerts -m: %s is neither a host name nor an IP address (no port)", quote(name))
		}
		cfg.Hosts = append(cfg.Hosts, name)
	}
	return cfg, nil
}

// runGencerts writes the certificates and says how to use them; it returns the exit status.
func runGencerts(cfg clientConfig, stdout, stderr io.Writer) int {
	if err := gencerts(cfg.Dir, cfg.Hosts, stdout); err != nil {
		fmt.Fprintf(stderr, "raft: gencerts: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func gencerts(dir string, hosts []string, stdout io.Writer) error {
	for _, name := range certFiles {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists, and gencerts never overwrites: give -d a new or empty dir", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	dnsNames, ips := nodeNames(hosts)
	now := time.Now()
	files, err := makeCerts(dnsNames, ips, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil { // it holds ca.key
		return err
	}
	if err := writeFiles(dir, files); err != nil {
		return err
	}
	names := slices.Clone(dnsNames)
	for _, ip := range ips {
		names = append(names, ip.String())
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	fmt.Fprintf(stdout, `Wrote a cluster CA and certificates it signed to %s:
  ca.crt, ca.key          the CA; ca.key makes certificates the cluster accepts: no node needs it, keep it safe
  node.crt, node.key      for every member, valid for %s until %s
                          (members on other machines need their names in it: -m 'host1,10.0.0.2')
  client.crt, client.key  for clients, valid until %s
Start each member with:
  -tls-cert %s -tls-key %s -tls-ca %s
Run the client with:
  -tls-cert %s -tls-key %s -tls-ca %s
`, dir, strings.Join(names, ", "), now.Add(leafValidity).Format(time.DateOnly), now.Add(leafValidity).Format(time.DateOnly),
		path("node.crt"), path("node.key"), path("ca.crt"), path("client.crt"), path("client.key"), path("ca.crt"))
	return nil
}

// nodeNames are the names the member certificate is valid for: this machine (localhost,
// 127.0.0.1, ::1 and its hostname) and extra, host names or IP addresses.
func nodeNames(extra []string) (dnsNames []string, ips []net.IP) {
	dnsNames = []string{"localhost"}
	ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if h, err := os.Hostname(); err == nil {
		extra = append([]string{h}, extra...)
	}
	for _, name := range extra {
		if ip := net.ParseIP(name); ip == nil && !slices.Contains(dnsNames, name) {
			dnsNames = append(dnsNames, name)
		} else if ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return dnsNames, ips
}

// makeCerts makes the CA, the member and the client certificates and their keys, as
// PEM files.
func makeCerts(dnsNames []string, ips []net.IP, now time.Time) ([]pemFile, error) {
	ca, caKey, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "raft cluster CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs members and clients, not other CAs
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	node, nodeKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "raft node"},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(leafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, // members dial each other
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, ca, caKey)
	if err != nil {
		return nil, err
	}
	client, clientKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "raft client"},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(leafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	if err != nil {
		return nil, err
	}
	var files []pemFile
	for _, c := range []struct {
		base string
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	}{{"ca", ca, caKey}, {"node", node, nodeKey}, {"client", client, clientKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			return nil, err
		}
		files = append(files,
			pemFile{c.base + ".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o644},
			pemFile{c.base + ".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600})
	}
	return files, nil
}

// issue makes an ECDSA P-256 key and a certificate for it from tmpl, signed by parent
// with parentKey, or self-signed if parent is nil.
func issue(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// writeFiles creates each file in dir, none of which may exist. If one fails, it removes
// those it created, so a failed run leaves nothing half made.
func writeFiles(dir string, files []pemFile) error {
	var written []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		err := writeNew(path, f.data, f.mode)
		if err == nil {
			written = append(written, path)
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(path)
		}
		for _, p := range written {
			os.Remove(p)
		}
		return err
	}
	return nil
}

// writeNew writes data to a new file at path; an existing file is an error, never overwritten.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
