package host

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	ghost "github.com/shirou/gopsutil/v4/host"
	gnet "github.com/shirou/gopsutil/v4/net"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/tasks"
)

// SystemParams are the parameters of the system collector.
type SystemParams struct {
	// Labels are the node's labels, passed by the node, reported as
	// "key=value" so hunters can see how a host was selected.
	Labels map[string]string `json:"labels,omitempty"`
}

// System is the system collector: one record describing the host.
type System struct{}

// NewSystem returns the system collector.
func NewSystem() *System { return &System{} }

// Name returns "system".
func (*System) Name() string { return "system" }

// Validate checks system parameters.
func (*System) Validate(params json.RawMessage) error {
	var p SystemParams
	return decodeParams(params, &p)
}

// Collect emits one system record. On a fixture root (Root other than
// "/") the host name, platform and kernel come from files under Root and
// the live host's network interfaces are left out, so that a replay never
// mixes in the machine it runs on.
func (*System) Collect(ctx context.Context, env *collectors.Env, params json.RawMessage) error {
	var p SystemParams
	if err := decodeParams(params, &p); err != nil {
		return err
	}
	live := env.Root == "" || env.Root == "/"
	gctx := withRoot(ctx, env.Root)

	// Platform facts; gopsutil reads os-release under Root.
	f := map[string]any{"os": runtime.GOOS, "arch": kernelArch()}
	platform, _, version, err := ghost.PlatformInformationWithContext(gctx)
	if err != nil {
		env.Logger.Warn("read platform", "err", err)
	}
	f["platform"], f["platform_version"] = platform, version
	if live {
		f["hostname"], _ = os.Hostname()
		f["kernel"], _ = ghost.KernelVersionWithContext(gctx)
	} else {
		f["hostname"] = fixtureLine(env.Root, "etc/hostname", env.Host)
		f["kernel"] = fixtureLine(env.Root, "proc/sys/kernel/osrelease", "")
	}

	// Boot time from btime, the same anchor process start times use.
	if b, err := readSmall(filepath.Join(procRoot(env.Root), "stat")); err == nil {
		if sec, err := parseBootTime(b); err == nil {
			f["boot_time"] = time.Unix(sec, 0).UTC().Format(time.RFC3339)
		}
	}

	if live {
		ifaces, addrs, err := interfaces(gctx)
		if err != nil {
			env.Logger.Warn("list interfaces", "err", err)
		}
		f["interfaces"], f["addresses"] = ifaces, addrs
	}
	f["labels"] = labelList(p.Labels)

	rec := tasks.Record{Kind: tasks.KindSystem, Time: time.Now().UTC(), Source: "live", Fields: f}
	if !live {
		rec.Source = env.Root
	}
	return env.Emit(rec)
}

// kernelArch is the machine name as uname -m prints it, or Go's name for
// the architecture when uname fails.
func kernelArch() string {
	if a, err := ghost.KernelArch(); err == nil && a != "" {
		return a
	}
	return runtime.GOARCH
}

// fixtureLine is the first line of the file rel under root, or def.
func fixtureLine(root, rel, def string) string {
	b, err := readRegular(filepath.Join(root, rel))
	if err != nil {
		return def
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return def
	}
	return line
}

// interfaces lists interface names and their addresses (without prefix
// length, so they compare equal to addresses in IoCs and other records).
func interfaces(ctx context.Context) ([]string, []string, error) {
	list, err := gnet.InterfacesWithContext(ctx)
	if err != nil {
		return []string{}, []string{}, err
	}
	names := make([]string, 0, len(list))
	addrs := []string{}
	for _, ifc := range list {
		names = append(names, ifc.Name)
		for _, a := range ifc.Addrs {
			if pfx, err := netip.ParsePrefix(a.Addr); err == nil {
				addrs = append(addrs, pfx.Addr().String())
			} else if ip, err := netip.ParseAddr(a.Addr); err == nil {
				addrs = append(addrs, ip.String())
			}
		}
	}
	return names, addrs, nil
}

// labelList renders labels as sorted "key=value" strings.
func labelList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
