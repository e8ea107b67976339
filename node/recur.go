package node

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// Recurring hunts. A hunt with Every set runs when it arrives (run 1,
// under its own ID) and then again every interval until its deadline;
// run K answers under tasks.RunID(ID, K), so each run's records, results
// and chained steps are kept as their own version. The issuer accepts
// results for any run of a task it issued. A run still going when the
// next is due is not doubled: the next run waits for a slot like any task.

// maxRuns bounds the runs of one recurring hunt on one node, whatever the
// interval and deadline say.
const maxRuns = 1000

// scheduleRuns starts the later runs of a recurring hunt. Run K is due at
// IssuedAt + (K-1)*Every on every node, so that run K means the same
// window across the fleet: a node that received the hunt late (catch-up,
// or a node that joined) runs it at once as run 1, then skips the windows
// already past and joins the fleet's next run. It returns at once; the
// schedule stops at the deadline, on cancel, or when the node closes.
func (n *Node) scheduleRuns(h *tasks.Hunt, log *slog.Logger) {
	if h.Every <= 0 || tasks.ValidateEvery(h.Every, h.Header) != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		timer := time.NewTimer(0)
		<-timer.C
		defer timer.Stop()
		for k := 2; k <= maxRuns; k++ {
			due := h.IssuedAt.Add(time.Duration(k-1) * h.Every)
			if !due.Before(h.NotAfter) {
				return
			}
			wait := time.Until(due)
			if wait < 0 {
				n.count("recur/skipped") // this window passed before the node had the hunt
				continue
			}
			timer.Reset(wait)
			select {
			case <-n.ctx.Done():
				return
			case <-timer.C:
			}
			if _, cancelled := n.cancelReason(h.ID); cancelled {
				return
			}
			run := *h
			run.ID = tasks.RunID(h.ID, k)
			rlog := log.With("run", k)
			n.count("recur/run")
			n.startTask(run.Header, rlog, func(ctx context.Context) []*tasks.Result {
				return n.runHunt(ctx, &run, rlog)
			})
		}
	}()
}

// RunDiff is what changed between two runs of a recurring hunt.
type RunDiff struct {
	// From and To are the compared run IDs.
	From string `json:"from"`
	To   string `json:"to"`

	// Added are findings in To and not in From; Removed the reverse.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`

	// Hosts are the hosts that ran each run (declined ones left out), for
	// telling "gone" from "not asked".
	FromHosts []string `json:"from_hosts,omitempty"`
	ToHosts   []string `json:"to_hosts,omitempty"`
}

// Finding is the comparable line of a detection: host, indicator and the
// record's summary (times left out, since every run observes anew).
func Finding(d tasks.Detection) string {
	return fmt.Sprintf("%s  %s:%s  %s %s", d.Host, d.IoCType, d.IoCValue, d.Record.Kind,
		d.Record.Summary())
}

// DiffRuns compares the detections of two runs.
func DiffRuns(fromID string, from []tasks.Result, toID string, to []tasks.Result) RunDiff {
	set := func(rs []tasks.Result) (map[string]bool, []string) {
		m := map[string]bool{}
		var hosts []string
		for _, r := range rs {
			for _, d := range r.Detections {
				m[Finding(d)] = true
			}
			if r.Final && r.Status != tasks.StatusDeclined && !slices.Contains(hosts, r.Host) {
				hosts = append(hosts, r.Host)
			}
		}
		sort.Strings(hosts)
		return m, hosts
	}
	a, ah := set(from)
	b, bh := set(to)
	diff := RunDiff{From: fromID, To: toID, FromHosts: ah, ToHosts: bh}
	for f := range b {
		if !a[f] {
			diff.Added = append(diff.Added, f)
		}
	}
	for f := range a {
		if !b[f] {
			diff.Removed = append(diff.Removed, f)
		}
	}
	sort.Strings(diff.Added)
	sort.Strings(diff.Removed)
	return diff
}
