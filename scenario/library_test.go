package scenario

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/huntfile"
	"github.com/huntmesh/huntmesh/tasks"
)

// libraryHosts is a two-host scenario for the hunt library: lib-bad holds
// what each library hunt is for, lib-clean the look-alikes it must leave
// alone. The files are inert stand-ins: the "web shell" exits before the
// text the rule looks for, inside a comment, and the "binaries" are ELF
// headers with nothing after them.
var libraryHosts = map[string]string{
	"hosts.yaml": `hosts:
  - name: lib-bad
    labels: {role: web, value: high}
    root: lib-bad/root
    processes: lib-bad/processes.json
    logs: [lib-bad/auth.log]
  - name: lib-clean
    labels: {role: web, value: high}
    root: lib-clean/root
    processes: lib-clean/processes.json
    logs: [lib-clean/auth.log]
`,
	"lib-bad/root/var/www/html/up.php":    "<?php exit(0); /* passthru($_GET['c']); */ ?>\n",
	"lib-bad/root/var/www/html/index.php": "<?php echo 'hello'; ?>\n",
	"lib-bad/root/etc/cron.d/updater":     "* * * * * root /tmp/.x/run\n",
	"lib-bad/root/etc/ld.so.preload":      "/usr/lib/x86_64-linux-gnu/libnss_cache.so\n",
	"lib-bad/root/root/.ssh/authorized_keys": "ssh-ed25519 " +
		"AAAAC3NzaC1lZDI1NTE5AAAAIHVzZWQtb25seS1pbi10ZXN0cy1ub3QtYS1yZWFsLWtleQ test@lab\n",
	"lib-bad/root/tmp/.x/run": "\x7fELF\x02\x01\x01\x00stand-in\n",
	"lib-bad/root/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
		"toor:x:0:0:toor:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n",
	"lib-bad/processes.json": `[
 {"pid": 1, "ppid": 0, "name": "systemd", "exe": "/usr/lib/systemd/systemd",
  "cmdline": "/sbin/init", "user": "root", "started": "2024-08-05T07:00:00Z"},
 {"pid": 10, "ppid": 1, "name": "nginx", "exe": "/usr/sbin/nginx",
  "cmdline": "nginx: worker process", "user": "www-data", "started": "2024-08-05T07:00:05Z"},
 {"pid": 11, "ppid": 10, "name": "sh", "exe": "/usr/bin/dash", "cmdline": "sh -c id",
  "user": "www-data", "started": "2024-08-05T08:00:00Z"}
]`,
	"lib-bad/auth.log": "Aug  5 08:00:01 lib-bad sshd[700]: " +
		"Failed password for root from 203.0.113.9 port 40001 ssh2\n" +
		"Aug  5 08:00:03 lib-bad sshd[700]: " +
		"Failed password for root from 203.0.113.9 port 40002 ssh2\n" +
		"Aug  5 08:00:05 lib-bad sshd[701]: " +
		"Accepted password for root from 203.0.113.9 port 40003 ssh2\n",

	"lib-clean/root/var/www/html/index.php": "<?php echo htmlspecialchars($_GET['q']); ?>\n",
	"lib-clean/root/etc/cron.d/backup":      "0 3 * * * root /usr/local/bin/backup\n",
	"lib-clean/root/usr/local/bin/backup":   "\x7fELF\x02\x01\x01\x00stand-in\n",
	"lib-clean/root/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
		"deploy:x:1000:1000::/home/deploy:/bin/bash\n",
	"lib-clean/processes.json": `[
 {"pid": 1, "ppid": 0, "name": "systemd", "exe": "/usr/lib/systemd/systemd",
  "cmdline": "/sbin/init", "user": "root", "started": "2024-08-05T07:00:00Z"},
 {"pid": 10, "ppid": 1, "name": "nginx", "exe": "/usr/sbin/nginx",
  "cmdline": "nginx: worker process", "user": "www-data", "started": "2024-08-05T07:00:05Z"},
 {"pid": 12, "ppid": 1, "name": "sh", "exe": "/usr/bin/dash", "cmdline": "sh /etc/init.d/backup",
  "user": "root", "started": "2024-08-05T08:00:00Z"}
]`,
	"lib-clean/auth.log": "Aug  5 08:00:05 lib-clean sshd[801]: " +
		"Accepted publickey for deploy from 10.0.0.5 port 50000 ssh2\n",
}

// writeLibraryHosts writes libraryHosts under a temporary folder.
func writeLibraryHosts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range libraryHosts {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(name, "/tmp/") || strings.Contains(name, "/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLibraryFinds runs each hunt of hunts/ (but the cryptominer one,
// which TestCryptominer covers) on two real nodes: every rule finds what
// it is written for on lib-bad, the chains run there, and lib-clean's
// look-alikes match nothing. A rule naming a field the collectors do not
// emit would match nothing and fail here.
func TestLibraryFinds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	f := Start(t, writeLibraryHosts(t), Options{})
	tests := []struct {
		file  string
		finds map[string]string // rule or indicator value -> a field of the record
		chain string
	}{
		{"webshell.yaml", map[string]string{
			"webshell_exec_request_param": "/var/www/html/up.php",
			"web-server-spawned-shell":    "sh -c id",
		}, "shell-then-connections"},
		{"ssh-bruteforce-persistence.yaml", map[string]string{
			"ssh-failed-login":           "203.0.113.9",
			"ssh-password-login-as-root": "203.0.113.9",
			"uid0-account-not-root":      "toor",
		}, "login-then-persistence"},
		{"persistence-sweep.yaml", map[string]string{
			"autostart-from-temp-or-hidden-path": "/etc/cron.d/updater",
			"ld-preload":                         "/etc/ld.so.preload",
			"root-authorized-key":                "/root/.ssh/authorized_keys",
		}, ""},
		{"unknown-binaries.yaml", map[string]string{
			"executable-in-temp-or-hidden-folder": "/tmp/.x/run",
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			hf, err := huntfile.Load(filepath.Join("../hunts", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			h, err := hf.Hunt(huntfile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ans, err := f.Hunt(context.Background(), "lib-clean", h, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if c := ans.Completeness; c.ByStatus[tasks.StatusFinished] != 2 {
				t.Fatalf("completeness %+v, want both hosts finished", c)
			}
			for _, d := range ans.Detections() {
				if d.Host != "lib-bad" {
					t.Errorf("%s: %s:%s on %s", d.Host, d.IoCType, d.IoCValue, d.Record.Summary())
				}
			}
			for what, in := range tc.finds {
				if !slices.ContainsFunc(ans.Detections(), func(d tasks.Detection) bool {
					return d.Host == "lib-bad" && d.IoCValue == what && recordHas(&d.Record, in)
				}) {
					t.Errorf("lib-bad: no %s detection on a record with %q; got %v", what, in,
						found(ans.Detections()))
				}
			}
			if tc.chain == "" {
				return
			}
			ran := map[string]bool{}
			for _, r := range ans.Results {
				for _, c := range r.Collectors {
					if strings.HasPrefix(c.Name, "chain "+tc.chain+": ") && c.Error == "" {
						ran[r.Host] = true
					}
				}
			}
			if !ran["lib-bad"] || ran["lib-clean"] {
				t.Errorf("chain %s ran on %v, want lib-bad only", tc.chain, ran)
			}
		})
	}
}

// recordHas reports whether any string field of rec contains s.
func recordHas(rec *tasks.Record, s string) bool {
	for _, v := range rec.Fields {
		if str, ok := v.(string); ok && strings.Contains(str, s) {
			return true
		}
	}
	return false
}

// found lists detections as "host ioc_value: record", for messages.
func found(dets []tasks.Detection) []string {
	var out []string
	for _, d := range dets {
		out = append(out, d.Host+" "+d.IoCValue+": "+d.Record.Summary())
	}
	return out
}
