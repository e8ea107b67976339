package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/shirou/gopsutil/v4/common"

	"github.com/huntmesh/huntmesh/collectors"
)

// clockTicks is USER_HZ, the unit of the start time in /proc/PID/stat. It is
// 100 on every architecture Linux ships today; sysconf is not reachable
// without cgo, and gopsutil hard-codes the same value.
const clockTicks = 100

// maxProcFile bounds reads of small /proc and /etc files so that a hostile
// fixture tree cannot make a collector allocate without limit.
const maxProcFile = 1 << 20

// procStat is the part of /proc/PID/stat the collectors need.
type procStat struct {
	comm      string
	ppid      int64
	startTick uint64 // clock ticks after boot
}

// errMalformed marks input that does not have the expected shape.
var errMalformed = errors.New("malformed")

// parseProcStat decodes the contents of /proc/PID/stat. The command name
// sits in parentheses and may itself hold spaces and parentheses, so the
// fields after it are found from the last closing parenthesis.
func parseProcStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("parse stat: %w: no command name", errMalformed)
	}
	rest := strings.Fields(string(b[closing+1:]))

	// rest[0] is the state (field 3); ppid is field 4, starttime field 22.
	if len(rest) < 20 {
		return procStat{}, fmt.Errorf("parse stat: %w: %d fields", errMalformed, len(rest))
	}
	ppid, err := strconv.ParseInt(rest[1], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	start, err := strconv.ParseUint(rest[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat start time: %w", err)
	}
	return procStat{comm: string(b[open+1 : closing]), ppid: ppid, startTick: start}, nil
}

// parseBootTime finds the btime line (seconds since the epoch) in the
// contents of /proc/stat.
func parseBootTime(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxProcFile)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "btime" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("parse btime %q: %w", f[1], errMalformed)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("parse boot time: %w: no btime line", errMalformed)
}

// startMillis turns a start tick count into Unix milliseconds. It uses
// the integer btime, so the same process yields the same value on every
// scan: the process key depends on that.
func startMillis(bootSec int64, ticks uint64) int64 {
	return bootSec*1000 + int64(ticks*1000/clockTicks)
}

// readSmall reads a regular file of at most maxProcFile bytes. /proc files
// report size 0, so the bound is applied while reading.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxProcFile {
		return nil, fmt.Errorf("read %s: over %d bytes", path, maxProcFile)
	}
	return b, nil
}

// readRegular reads a small file under a fixture or live root, refusing
// symlinks, FIFOs and devices: only a regular file is opened.
func readRegular(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w", path, errNotRegular)
	}
	if fi.Size() > maxProcFile {
		return nil, fmt.Errorf("read %s: %w", path, errTooLarge)
	}
	return readSmall(path)
}

var (
	// errNotRegular is returned for symlinks, FIFOs, devices and folders.
	errNotRegular = errors.New("not a regular file")

	// errTooLarge is returned when a file exceeds a read bound.
	errTooLarge = errors.New("file too large")
)

// noProcTable reports, and counts as a skip, a root with no proc file
// system and no snapshot: a replayed host whose evidence is only files or
// logs has no process or socket table to read, which is no failure.
func noProcTable(env *collectors.Env) bool {
	if _, err := os.Stat(filepath.Join(procRoot(env.Root), "stat")); err == nil {
		return false
	}
	env.Stats.Skip("no-process-table", procRoot(env.Root))
	return true
}

// procRoot is the proc file system under root.
func procRoot(root string) string {
	return filepath.Join(root, "proc")
}

// withRoot returns ctx carrying gopsutil's environment for root, so that
// its readers look under root/proc, root/sys and root/etc instead of the
// live host's when a fixture root is given.
func withRoot(ctx context.Context, root string) context.Context {
	if root == "" || root == "/" {
		return ctx
	}
	return context.WithValue(ctx, common.EnvKey, common.EnvMap{
		common.HostProcEnvKey: filepath.Join(root, "proc"),
		common.HostSysEnvKey:  filepath.Join(root, "sys"),
		common.HostEtcEnvKey:  filepath.Join(root, "etc"),
		common.HostVarEnvKey:  filepath.Join(root, "var"),
		common.HostRunEnvKey:  filepath.Join(root, "run"),
		common.HostDevEnvKey:  filepath.Join(root, "dev"),
		common.HostRootEnvKey: root,
	})
}

// isGone reports whether err means the process went away under us.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// isDenied reports whether err is a permission failure.
func isDenied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.EPERM)
}

// userNames maps numeric uids to names from root/etc/passwd. A missing or
// unreadable passwd file leaves the map empty; lookups then return the
// number as a string, which is what ps shows as well.
type userNames map[int64]string

// loadUserNames reads root/etc/passwd into a uid map.
func loadUserNames(root string) userNames {
	out := userNames{}
	b, err := readRegular(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		return out
	}
	for _, e := range parsePasswd(b) {
		if _, dup := out[e.uid]; !dup {
			out[e.uid] = e.name
		}
	}
	return out
}

// name returns the user name for uid.
func (u userNames) name(uid int64) string {
	if n, ok := u[uid]; ok {
		return n
	}
	return strconv.FormatInt(uid, 10)
}
