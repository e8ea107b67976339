package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// maxHostsFile bounds how much of a scenario's hosts.yaml is read.
const maxHostsFile = 1 << 20

// scenario is what the nodes are seeded with.
type scenario struct {
	hosts []scenarioHost
	iocs  []tasks.IoC

	// Background nodes replay these generated process and socket tables
	// and walk an empty root, so a hunt costs them little and finds
	// nothing.
	bgProcesses   string
	bgConnections string
	bgRoot        string
}

// scenarioHost is one host of hosts.yaml, with paths made absolute.
type scenarioHost struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Root        string            `yaml:"root"`
	Processes   string            `yaml:"processes"`
	Connections string            `yaml:"connections"`
}

// defaultIoCs are hunted when no scenario gives intel: the stand-in
// miner's process name and the stratum port.
var defaultIoCs = []tasks.IoC{
	{Type: tasks.IoCProcess, Value: "kworkerd", Severity: "high", Source: "sim"},
	{Type: tasks.IoCPort, Value: "3333", Severity: "medium", Source: "sim"},
}

// loadScenario reads dir (may be empty) and writes the background tables
// under work.
func loadScenario(dir, work string) (*scenario, error) {
	sc := &scenario{iocs: defaultIoCs}
	if err := sc.writeBackground(work); err != nil {
		return nil, err
	}
	if dir == "" {
		return sc, nil
	}
	f, err := os.Open(filepath.Join(dir, "hosts.yaml"))
	if err != nil {
		return nil, fmt.Errorf("open scenario: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxHostsFile+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario hosts: %w", err)
	}
	if len(raw) > maxHostsFile {
		return nil, fmt.Errorf("read scenario hosts: over %d bytes", maxHostsFile)
	}
	var doc struct {
		Hosts []scenarioHost `yaml:"hosts"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode scenario hosts: %w", err)
	}
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		return filepath.Join(dir, filepath.Clean("/"+p))
	}
	for _, h := range doc.Hosts {
		h.Root, h.Processes, h.Connections = abs(h.Root), abs(h.Processes), abs(h.Connections)
		sc.hosts = append(sc.hosts, h)
	}
	csv := filepath.Join(dir, "intel", "iocs.csv")
	if _, err := os.Stat(csv); err == nil {
		imp, err := intel.ImportFile(csv, time.Now())
		if err != nil {
			return nil, fmt.Errorf("scenario intel: %w", err)
		}
		if len(imp.IoCs) > 0 {
			sc.iocs = imp.IoCs
		}
	}
	return sc, nil
}

// writeBackground writes the tables and the empty root background nodes use.
func (sc *scenario) writeBackground(work string) error {
	sc.bgRoot = filepath.Join(work, "empty-root")
	if err := os.MkdirAll(sc.bgRoot, 0o700); err != nil {
		return fmt.Errorf("background root: %w", err)
	}
	type proc struct {
		Pid     int    `json:"pid"`
		Ppid    int    `json:"ppid"`
		Name    string `json:"name"`
		Exe     string `json:"exe"`
		Cmdline string `json:"cmdline"`
		User    string `json:"user"`
		Started string `json:"started"`
	}
	type conn struct {
		Proto  string `json:"proto"`
		Local  string `json:"local"`
		Remote string `json:"remote"`
		State  string `json:"state"`
		Pid    int    `json:"pid"`
	}
	started := "2024-07-01T02:00:00Z"
	procs := []proc{
		{1, 0, "systemd", "/usr/lib/systemd/systemd", "/sbin/init", "root", started},
		{410, 1, "sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D", "root", started},
		{520, 1, "cron", "/usr/sbin/cron", "/usr/sbin/cron -f", "root", started},
		{880, 1, "nginx", "/usr/sbin/nginx", "nginx: master process", "root", started},
		{881, 880, "nginx", "/usr/sbin/nginx", "nginx: worker process", "www-data", started},
		{1200, 1, "huntmesh", "/usr/bin/huntmesh", "huntmesh node", "root", started},
	}
	conns := []conn{
		{"tcp", "0.0.0.0:22", "0.0.0.0:0", "LISTEN", 410},
		{"tcp", "0.0.0.0:443", "0.0.0.0:0", "LISTEN", 880},
		{"tcp", "192.0.2.10:443", "198.51.100.7:61022", "ESTABLISHED", 881},
	}
	// The connections collector names socket owners from a processes.json
	// beside its snapshot, as the scenario's hosts have.
	sc.bgProcesses = filepath.Join(sc.bgRoot, "..", "background", "processes.json")
	sc.bgConnections = filepath.Join(sc.bgRoot, "..", "background", "connections.json")
	if err := os.MkdirAll(filepath.Dir(sc.bgProcesses), 0o700); err != nil {
		return fmt.Errorf("background tables: %w", err)
	}
	for path, v := range map[string]any{sc.bgProcesses: procs, sc.bgConnections: conns} {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode background table: %w", err)
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return fmt.Errorf("write background table: %w", err)
		}
	}
	return nil
}

// apply configures node i: a scenario host for the first ones, a
// background host for the rest.
func (sc *scenario) apply(i int, cfg *node.Config) {
	cfg.Host = fmt.Sprintf("node-%04d", i)
	cfg.Labels = map[string]string{"role": "background", "sim": "true"}
	cfg.Root = sc.bgRoot
	cfg.ReplayProcesses, cfg.ReplayConnections = sc.bgProcesses, sc.bgConnections
	if i >= len(sc.hosts) {
		return
	}
	h := sc.hosts[i]
	cfg.Host = h.Name
	cfg.Labels = map[string]string{"sim": "true"}
	for k, v := range h.Labels {
		cfg.Labels[k] = v
	}
	if h.Root != "" {
		cfg.Root = h.Root
	}
	if h.Processes != "" {
		cfg.ReplayProcesses = h.Processes
	}
	if h.Connections != "" {
		cfg.ReplayConnections = h.Connections
	}
}

// seed stores count generated background records in node i's store, as
// if an earlier hunt had collected them, for queries to scan.
func (sc *scenario) seed(n *node.Node, i, count int) error {
	if count <= 0 {
		return nil
	}
	now := time.Now().UTC()
	host := fmt.Sprintf("node-%04d", i)
	if i < len(sc.hosts) {
		host = sc.hosts[i].Name
	}
	names := []string{"sshd", "cron", "nginx", "systemd-journald", "rsyslogd", "containerd"}
	recs := make([]tasks.Record, 0, count)
	for k := range count {
		recs = append(recs, tasks.Record{
			Kind: "process", Time: now.Add(-time.Duration(k) * time.Minute), Host: host,
			Collector: "processes", Source: "sim",
			Fields: map[string]any{
				"pid": 1000 + k, "ppid": 1, "name": names[k%len(names)],
				"exe": "/usr/sbin/" + names[k%len(names)], "user": "root",
			},
		})
	}
	return n.Store().PutRecords("sim-seed", recs)
}

// hunt builds the sim's hunt: process and socket tables matched against
// the scenario's IoCs.
func (sc *scenario) hunt(replyTo string, ttl time.Duration) *tasks.Hunt {
	now := time.Now().UTC()
	return &tasks.Hunt{
		Header: tasks.Header{
			ID: tasks.NewID(now), Type: tasks.TypeHunt, IssuedAt: now,
			NotAfter: now.Add(ttl), ReplyTo: replyTo,
		},
		Collectors: []tasks.CollectorSpec{{Name: "processes"}, {Name: "connections"}},
		IoCs:       sc.iocs,
	}
}
