package files

import (
	"os"
	"path"
	"strings"

	"github.com/huntmesh/huntmesh/collectors"
)

// locations lists where a Linux host keeps things that start programs,
// as host paths, for the accounts of root's /etc/passwd.
func locations(env *collectors.Env, acc *accounts) []location {
	rcLocal := func(b []byte, _, _ string) []parsed { return parseRCLocal(b) }
	sysCron := func(b []byte, _, _ string) []parsed { return parseCron(b, true, "") }
	userCron := func(b []byte, p, _ string) []parsed {
		return parseCron(b, false, path.Base(p))
	}
	atJob := func(b []byte, _, user string) []parsed { return parseAtJob(b, user) }
	unitOrTimer := func(b []byte, p, user string) []parsed {
		if strings.HasSuffix(p, ".timer") {
			return parseTimer(b, p)
		}
		return parseUnit(b, user)
	}
	preload := func(b []byte, _, _ string) []parsed { return parsePreload(b) }
	keys := func(b []byte, _, user string) []parsed { return parseAuthorizedKeys(b, user) }

	locs := []location{
		{typ: TypeRCLocal, path: "/etc/rc.local", user: "root", parse: rcLocal},
		{typ: TypeRCLocal, path: "/etc/rc.d/rc.local", user: "root", parse: rcLocal},
		{typ: TypeInitD, path: "/etc/init.d", dir: true, user: "root"},
		{typ: TypeCron, path: "/etc/crontab", parse: sysCron},
		{typ: TypeCron, path: "/etc/cron.d", dir: true, parse: sysCron},
		{typ: TypeCron, path: "/var/spool/cron/crontabs", dir: true, parse: userCron},
		{typ: TypeCron, path: "/var/spool/cron", dir: true, parse: userCron},
		{typ: TypeAt, path: "/var/spool/at", dir: true, parse: atJob},
		{typ: TypeAt, path: "/var/spool/cron/atjobs", dir: true, parse: atJob},
		{typ: TypeLdSoPreload, path: "/etc/ld.so.preload", user: "root", parse: preload},
		{typ: TypeShellProfile, path: "/etc/profile"},
		{typ: TypeShellProfile, path: "/etc/profile.d", dir: true},
		{typ: TypeShellProfile, path: "/etc/bash.bashrc"},
	}
	for _, period := range []string{"hourly", "daily", "weekly", "monthly"} {
		locs = append(locs, location{typ: TypeCron, path: "/etc/cron." + period,
			dir: true, user: "root", parse: func(_ []byte, p, _ string) []parsed {
				return []parsed{{command: p}}
			}})
	}
	for _, d := range []string{"/etc/systemd/system", "/lib/systemd/system",
		"/usr/lib/systemd/system"} {
		locs = append(locs, location{typ: TypeSystemdUnit, path: d, dir: true,
			recursive: true, user: "root", parse: unitOrTimer})
	}

	// Per-user places, for every home in passwd, /root, and /home/* (a
	// fixture or a broken host may lack passwd entries).
	for _, h := range homes(env, acc) {
		locs = append(locs,
			location{typ: TypeSystemdUnit, path: h.home + "/.config/systemd/user",
				dir: true, recursive: true, user: h.user, parse: unitOrTimer},
			location{typ: TypeAuthorizedKeys, path: h.home + "/.ssh/authorized_keys",
				user: h.user, parse: keys},
			location{typ: TypeAuthorizedKeys, path: h.home + "/.ssh/authorized_keys2",
				user: h.user, parse: keys},
		)
		for _, f := range []string{".bashrc", ".profile", ".bash_profile", ".zshrc"} {
			locs = append(locs, location{typ: TypeShellProfile, path: h.home + "/" + f,
				user: h.user})
		}
	}
	return locs
}

// typeFor gives systemd timers their own type.
func typeFor(loc location, hostPath string) string {
	if loc.typ == TypeSystemdUnit && strings.HasSuffix(hostPath, ".timer") {
		return TypeSystemdTimer
	}
	return loc.typ
}

type home struct{ home, user string }

// homes lists distinct home directories with their users.
func homes(env *collectors.Env, acc *accounts) []home {
	var out []home
	seen := map[string]bool{}
	add := func(dir, user string) {
		dir = path.Clean(dir)
		if dir == "/" || dir == "." || !strings.HasPrefix(dir, "/") || seen[dir] {
			return
		}
		seen[dir] = true
		out = append(out, home{dir, user})
	}
	add("/root", "root")
	for _, a := range acc.list {
		add(a.home, a.name)
	}
	fsHome, err := realDir(env, "/home")
	if err != nil {
		return out
	}
	if ents, err := os.ReadDir(fsHome); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				add("/home/"+e.Name(), e.Name())
			}
		}
	}
	return out
}
