package cli

import (
	"context"
	"time"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// issued is what the local node said when a signed task was done: the
// completeness, and a query's merged stacking groups.
type issued struct {
	comp   *node.Completeness
	groups []tasks.Group
}

// issueTask hands a signed task (hunt, query or cancel) to the local node,
// waits up to wait for the fleet, and passes each answer part to show as
// it arrives (nil prints every part with out). It prints the task ID when
// the node accepted it; the completeness line is the caller's to print.
func issueTask(ctx context.Context, client *node.Client, raw []byte, wait time.Duration,
	out *printer, show func(*tasks.Result)) (*issued, error) {
	if show == nil {
		show = out.result
	}
	callCtx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	done := &issued{}
	err := client.Call(callCtx, node.Request{Op: "hunt", Envelope: raw, Wait: wait},
		func(r node.Response) error {
			switch {
			case r.Result != nil:
				show(r.Result)
			case r.Completeness != nil:
				done.comp, done.groups = r.Completeness, r.Groups
			case r.TaskID != "":
				out.started(r.TaskID)
			}
			return nil
		})
	out.flush()
	return done, err
}
