// Package scenario turns a scenario folder (hosts.yaml, per-host roots,
// process and socket snapshots, log exports, intel) into huntmesh nodes
// that replay those hosts. Tests start one real node per host with Start;
// the simulator stages the same data with Stage.
package scenario

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/huntmesh/huntmesh/collectors/logs"
	"github.com/huntmesh/huntmesh/node"
)

// maxHostsFile bounds hosts.yaml.
const maxHostsFile = 1 << 20

// maxStagedFile bounds one file copied while staging a host.
const maxStagedFile = 64 << 20

// LogDir is where staged log exports sit under a host's staged root.
const LogDir = "/var/log/scenario"

// Host is one host of a scenario, as hosts.yaml describes it. Paths are
// relative to the scenario folder.
type Host struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Root        string            `yaml:"root"`
	Processes   string            `yaml:"processes"`
	Connections string            `yaml:"connections"`
	Logs        []string          `yaml:"logs"`
}

// Scenario is a loaded scenario folder.
type Scenario struct {
	// Dir is the scenario folder.
	Dir string

	// Hosts are the hosts in the order hosts.yaml lists them.
	Hosts []Host
}

// Load reads dir/hosts.yaml and checks that every file it names exists
// inside dir.
func Load(dir string) (*Scenario, error) {
	f, err := os.Open(filepath.Join(dir, "hosts.yaml"))
	if err != nil {
		return nil, fmt.Errorf("open scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHostsFile+1))
	if err != nil {
		return nil, fmt.Errorf("read hosts.yaml: %w", err)
	}
	if len(data) > maxHostsFile {
		return nil, fmt.Errorf("hosts.yaml is over %d bytes", maxHostsFile)
	}
	var doc struct {
		Hosts []Host `yaml:"hosts"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode hosts.yaml: %w", err)
	}
	if len(doc.Hosts) == 0 {
		return nil, errors.New("hosts.yaml lists no hosts")
	}
	s := &Scenario{Dir: dir, Hosts: doc.Hosts}
	seen := map[string]bool{}
	for _, h := range s.Hosts {
		if h.Name == "" || seen[h.Name] {
			return nil, fmt.Errorf("hosts.yaml: empty or repeated host name %q", h.Name)
		}
		seen[h.Name] = true
		for _, p := range append([]string{h.Root, h.Processes, h.Connections}, h.Logs...) {
			if p == "" {
				continue
			}
			if !filepath.IsLocal(p) {
				return nil, fmt.Errorf("host %s: path %q leaves the scenario folder", h.Name, p)
			}
			if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
				return nil, fmt.Errorf("host %s: %w", h.Name, err)
			}
		}
	}
	return s, nil
}

// Host returns the host called name.
func (s *Scenario) Host(name string) (Host, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Replay is what a node needs to answer as a scenario host.
type Replay struct {
	// Root is the staged file system root: the host's tree plus its log
	// exports under LogDir.
	Root string

	// Processes and Connections are the snapshot files, "" when none.
	Processes   string
	Connections string

	// Logs are the staged log exports, as paths under Root.
	Logs []logs.Source
}

// Apply sets cfg up to replay the host: root, snapshots, logs, host name
// and labels.
func (r Replay) Apply(cfg *node.Config, h Host) {
	cfg.Host = h.Name
	cfg.Labels = map[string]string{}
	for k, v := range h.Labels {
		cfg.Labels[k] = v
	}
	cfg.Root = r.Root
	cfg.ReplayProcesses = r.Processes
	cfg.ReplayConnections = r.Connections
	cfg.Logs = r.Logs
}

// Stage copies host h's root tree into dst and its log exports under
// dst+LogDir, so that the collectors read them as they would on the host.
// File modes and modification times are kept; symlinks and special files
// are skipped.
func (s *Scenario) Stage(h Host, dst string) (Replay, error) {
	r := Replay{Root: dst}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return r, fmt.Errorf("stage %s: %w", h.Name, err)
	}
	if h.Root != "" {
		if err := copyTree(filepath.Join(s.Dir, h.Root), dst); err != nil {
			return r, fmt.Errorf("stage %s: %w", h.Name, err)
		}
	}
	for _, l := range h.Logs {
		hostPath := filepath.Join(LogDir, filepath.Base(l))
		if err := copyFile(filepath.Join(s.Dir, l), filepath.Join(dst, hostPath)); err != nil {
			return r, fmt.Errorf("stage %s: %w", h.Name, err)
		}
		r.Logs = append(r.Logs, logs.Source{Path: hostPath, Format: formatOf(l)})
	}
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		return filepath.Abs(filepath.Join(s.Dir, p))
	}
	var err error
	if r.Processes, err = abs(h.Processes); err != nil {
		return r, err
	}
	if r.Connections, err = abs(h.Connections); err != nil {
		return r, err
	}
	return r, nil
}

// formatOf names the log format of an export by its file name, the way
// the scenario names them; "" lets the collector sniff.
func formatOf(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "sysmon"):
		return logs.FormatSysmon
	case strings.Contains(base, "edr"):
		return logs.FormatEDR
	case strings.Contains(base, "azure"):
		return logs.FormatAzure
	case strings.Contains(base, "flow"):
		return logs.FormatFlow
	}
	return ""
}

// copyTree copies the regular files and folders of src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

// copyFile copies one regular file, keeping its mode and times.
func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("copy %s: not a regular file", src)
	}
	if fi.Size() > maxStagedFile {
		return fmt.Errorf("copy %s: %d bytes, over %d", src, fi.Size(), maxStagedFile)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}
