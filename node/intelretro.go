package node

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// RetroTaskID is the task ID under which retro-hunt detections are stored.
const RetroTaskID = "retro"

// retroLoop re-matches stored records each time the set gains indicators,
// gathering a burst of updates into one pass. It stops with the node.
func (in *intelNode) retroLoop() {
	defer in.n.wg.Done()
	for {
		select {
		case <-in.n.ctx.Done():
			return
		case <-in.kick:
		}
		select {
		case <-in.n.ctx.Done():
			return
		case <-time.After(retroDebounce):
		}
		rep := in.retroHunt(time.Now())
		in.mu.Lock()
		in.retro = rep
		in.mu.Unlock()
	}
}

// retroHunt matches the records stored within the retro window against
// the indicators added since the last pass, and stores what matches as
// detections under RetroTaskID. Only newly added indicators are matched,
// not edits of held ones, so a record already flagged by an older one, or
// by the same one before a feed was sent again, is not flagged again.
// Records are bounded above by now: anything collected later was matched
// live against the new set.
func (in *intelNode) retroHunt(now time.Time) RetroReport {
	start := time.Now()
	in.mu.Lock()
	since := in.retroV
	in.mu.Unlock()
	v := in.set.Version()

	fresh := in.set.Added(since, now)
	in.mu.Lock()
	in.retroV = v
	in.mu.Unlock()

	rep := RetroReport{At: now, IoCs: len(fresh), Since: now.Add(-in.window)}
	if len(fresh) == 0 {
		return rep
	}
	m, err := intel.Compile(fresh, intel.CompileOptions{Now: now, SkipInvalid: true})
	if err != nil {
		rep.Error = err.Error()
		return rep
	}

	var batch []tasks.Detection
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := in.n.store.PutDetections(RetroTaskID, batch)
		batch = batch[:0]
		return err
	}
	f := store.Filter{Since: rep.Since, Until: now}
	err = in.n.store.Records(in.n.ctx, f, func(rec tasks.Record) error {
		rep.Records++
		for _, d := range onePerIoC(m.Match(&rec)) {
			d.TaskID = RetroTaskID
			batch = append(batch, d)
			rep.Detections++
		}
		if len(batch) >= storeBatch {
			return flush()
		}
		return nil
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	rep.Dur = time.Since(start)
	switch {
	case err != nil && in.n.ctx.Err() != nil:
		rep.Error = "stopped: the node is shutting down"
		in.log.Info("retro-hunt stopped by shutdown", "records", rep.Records)
		return rep
	case err != nil:
		rep.Error = err.Error()
		in.log.Error("retro-hunt", "err", err)
	}
	in.n.count("intel/retro-runs")
	in.log.Info("retro-hunt done", "iocs", rep.IoCs, "records", rep.Records,
		"detections", rep.Detections, "dur", rep.Dur.Round(time.Millisecond))
	return rep
}

// yaraCollectors are the collectors that scan with YARA rules given in
// their "yara" parameter.
var yaraCollectors = map[string]bool{"files": true, "yara-memory": true}

// withIntelRules returns the hunt's collectors with the shared set's YARA
// rules added to each YARA-scanning collector whose parameters carry none.
// The hunt is not changed.
func withIntelRules(specs []tasks.CollectorSpec, m *intel.Matcher) []tasks.CollectorSpec {
	srcs := m.YARASources()
	if len(srcs) == 0 {
		return specs
	}
	out := make([]tasks.CollectorSpec, len(specs))
	copy(out, specs)
	for i, spec := range out {
		if !yaraCollectors[spec.Name] {
			continue
		}
		params := map[string]json.RawMessage{}
		if len(spec.Params) > 0 {
			if err := json.Unmarshal(spec.Params, &params); err != nil {
				continue // validation will name the bad parameters
			}
		}
		if _, ok := params["yara"]; ok {
			continue
		}
		rules := make([]map[string]string, len(srcs))
		for j, s := range srcs {
			rules[j] = map[string]string{"name": fmt.Sprintf("intel_%d", j), "text": s.Value}
		}
		b, err := json.Marshal(rules)
		if err != nil {
			continue
		}
		params["yara"] = b
		if raw, err := json.Marshal(params); err == nil {
			out[i].Params = raw
		}
	}
	return out
}
