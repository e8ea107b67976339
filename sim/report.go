package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/node"
)

// Report is what one measured run found. Durations are in milliseconds in
// JSON.
type Report struct {
	// Kind is "hunt" or "query".
	Kind  string `json:"kind"`
	Task  string `json:"task"`
	Nodes int    `json:"nodes"` // running when the hunt was issued
	From  string `json:"from"`

	// Setup describes the mesh.
	Setup Setup `json:"setup"`

	// Delivery is the task's arrival at each running node but the issuer.
	Delivery Latency `json:"delivery"`

	// Answers is the arrival of each node's final answer at the issuer,
	// counted from the issue, or from the release when work was held.
	Answers Latency `json:"answers"`

	// AnswersSinceIssue is the same arrivals counted from the issue
	// whether work was held or not: what the analyst waits.
	AnswersSinceIssue Latency `json:"answers_since_issue"`

	// HeldFor is how long the nodes' work was held after the issue (see
	// HuntOptions.Hold); zero when it was not.
	HeldFor Millis `json:"held_for_ms,omitempty"`

	// Completeness is the issuer's own view (node.Await).
	Completeness node.Completeness `json:"completeness"`

	// Curve is completeness over time: the share of running nodes that had
	// the task, and that had answered, at each step after issue.
	Curve []Point `json:"curve"`

	// Traffic is what each node's gossip sent while the hunt ran.
	Traffic Traffic `json:"traffic"`

	// Query is set by Query.
	Query *QueryReport `json:"query,omitempty"`

	// Partition is set by PartitionHunt.
	Partition *PartitionReport `json:"partition,omitempty"`
}

// Setup describes the simulated mesh and its cost.
type Setup struct {
	Latency           Millis  `json:"latency_ms"`
	Jitter            Millis  `json:"jitter_ms"`
	Loss              float64 `json:"loss"`
	Bandwidth         float64 `json:"bandwidth_bps,omitempty"`
	Degree            int     `json:"degree"`
	PresenceInterval  Millis  `json:"presence_interval_ms"`
	Heartbeat         Millis  `json:"heartbeat_ms"`
	SyncInterval      Millis  `json:"sync_interval_ms"`
	ValidateQueue     int     `json:"validate_queue"`
	PeerQueue         int     `json:"peer_queue"`
	Startup           Millis  `json:"startup_ms"`
	HeapPerNode       uint64  `json:"heap_per_node_bytes"`
	GoroutinesPerNode int     `json:"goroutines_per_node"`
	HeapTotal         uint64  `json:"heap_total_bytes"`
	CPUs              int     `json:"cpus"`
	// StartupTraffic is what the average node sent while the mesh formed.
	StartupTraffic Traffic `json:"startup_traffic"`
}

// Latency summarises arrival delays.
type Latency struct {
	Count  int    `json:"count"`
	Missed int    `json:"missed"`
	P50    Millis `json:"p50_ms"`
	P90    Millis `json:"p90_ms"`
	P99    Millis `json:"p99_ms"`
	Max    Millis `json:"max_ms"`
}

// Point is one step of the completeness curve.
type Point struct {
	At        Millis  `json:"at_ms"`
	Delivered float64 `json:"delivered"`
	Answered  float64 `json:"answered"`
}

// Traffic is gossip sent per node during a run.
type Traffic struct {
	BytesMean     float64 `json:"bytes_mean"`
	BytesMax      uint64  `json:"bytes_max"`
	MsgsMean      float64 `json:"msgs_mean"`
	MsgsMax       uint64  `json:"msgs_max"`
	TaskBytesMean float64 `json:"task_bytes_mean"`
	TaskBytesMax  uint64  `json:"task_bytes_max"`
	TaskMsgsMean  float64 `json:"task_msgs_mean"`
	TaskMsgsMax   uint64  `json:"task_msgs_max"`
	// TaskSize is the size of the task message on the wire.
	TaskSize uint64 `json:"task_size_bytes"`
	// Presence messages sent (forwarded or announced) per node, and the
	// other nodes' announcements each node received: every announcement
	// reaches every node.
	PresenceMsgsMean  float64 `json:"presence_msgs_mean"`
	PresenceBytesMean float64 `json:"presence_bytes_mean"`
	PresenceInMean    float64 `json:"presence_in_mean"`
	// MaxMsg and MaxRPC are the largest gossip message and RPC any node
	// sent since it started (gossip messages are capped at 64 KiB).
	MaxMsg uint64 `json:"max_msg_bytes"`
	MaxRPC uint64 `json:"max_rpc_bytes"`
	// QueueDrops and SendDrops sum, over all nodes, the messages refused
	// for a full validation queue and the RPCs gossipsub dropped for a full
	// peer queue or a peer it had no queue for yet (or any longer).
	QueueDrops uint64 `json:"queue_drops"`
	SendDrops  uint64 `json:"send_drops"`
}

// PartitionReport says what a partition did to a hunt.
type PartitionReport struct {
	Minority int `json:"minority"` // running nodes cut off
	// Majority is delivery on the issuer's side while cut.
	Majority Latency `json:"majority"`
	// DuringCut counts minority nodes that got the task while cut (0 when
	// the cut holds).
	DuringCut int `json:"during_cut"`
	// Healed is the minority's arrival counted from the heal.
	Healed Latency `json:"healed"`
	// Intel is when the minority held the intel update issued during the
	// cut, counted from the heal.
	Intel Latency `json:"intel"`
	// IntelBound is issue 4's bound on that convergence: three gossip
	// heartbeats plus one sync round trip (twice the link latency).
	IntelBound Millis `json:"intel_bound_ms"`
}

// Millis is a duration written as fractional milliseconds.
type Millis time.Duration

// MarshalJSON implements json.Marshaler.
func (m Millis) MarshalJSON() ([]byte, error) {
	return json.Marshal(float64(time.Duration(m).Microseconds()) / 1000)
}

// String prints the duration rounded to a tenth of a millisecond.
func (m Millis) String() string {
	return time.Duration(m).Round(100 * time.Microsecond).String()
}

// summarize computes percentiles of ds.
func summarize(ds []time.Duration, missed int) Latency {
	l := Latency{Count: len(ds), Missed: missed}
	if len(ds) == 0 {
		return l
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) Millis {
		i := int(p*float64(len(s))+0.999999) - 1
		return Millis(s[min(max(i, 0), len(s)-1)])
	}
	l.P50, l.P90, l.P99, l.Max = pct(0.50), pct(0.90), pct(0.99), Millis(s[len(s)-1])
	return l
}

// report builds the Report of an awaited hunt.
func (s *Sim) report(ih *issuedHunt, comp node.Completeness) *Report {
	var others []*Node
	for _, n := range ih.up {
		if n != ih.from {
			others = append(others, n)
		}
	}
	dd, missed := delays(ih.id, others, ih.at)
	from := ih.at
	if !ih.released.IsZero() {
		from = ih.released
	}
	ih.mu.Lock()
	var ad, ai []time.Duration
	for _, t := range ih.answers {
		ad = append(ad, max(t.Sub(from), 0))
		ai = append(ai, max(t.Sub(ih.at), 0))
	}
	ih.mu.Unlock()

	r := &Report{
		Task: ih.id, Nodes: len(ih.up), From: ih.from.Name,
		Setup:             s.setup(),
		Delivery:          summarize(dd, missed),
		Answers:           summarize(ad, len(ih.up)-len(ad)),
		AnswersSinceIssue: summarize(ai, len(ih.up)-len(ai)),
		Completeness:      comp,
		Curve:             curve(dd, ad, len(others), len(ih.up)),
	}
	if !ih.released.IsZero() {
		r.HeldFor = Millis(ih.released.Sub(ih.at))
	}
	r.Traffic = trafficSince(ih.up, ih.before)
	return r
}

// setup describes the sim.
func (s *Sim) setup() Setup {
	return Setup{
		Latency: Millis(s.cfg.Latency), Jitter: Millis(s.cfg.Jitter), Loss: s.cfg.Loss,
		Bandwidth: s.cfg.Bandwidth, Degree: s.cfg.Degree,
		PresenceInterval: Millis(s.cfg.PresenceInterval), Heartbeat: Millis(s.cfg.Heartbeat),
		SyncInterval: Millis(s.cfg.SyncInterval), ValidateQueue: s.cfg.ValidateQueue,
		PeerQueue: s.cfg.PeerQueue,
		Startup:   Millis(s.startup), HeapPerNode: s.heapPerNode,
		GoroutinesPerNode: s.goroutinesPN, HeapTotal: heapInUse(), CPUs: runtime.NumCPU(),
		StartupTraffic: s.startTraffic,
	}
}

// trafficSince sums what each node in up sent since the snapshots in
// before (a node missing there counts from its start).
func trafficSince(up []*Node, before map[*Node]counts) Traffic {
	var t Traffic
	if len(up) == 0 {
		return t
	}
	for _, n := range up {
		c := n.traffic.snapshot().minus(before[n])
		t.BytesMean += float64(c.Bytes)
		t.MsgsMean += float64(c.Msgs)
		t.TaskBytesMean += float64(c.TaskBytes)
		t.TaskMsgsMean += float64(c.TaskMsgs)
		t.PresenceMsgsMean += float64(c.PresenceMsgs)
		t.PresenceBytesMean += float64(c.PresenceBytes)
		t.PresenceInMean += float64(c.PresenceIn)
		t.BytesMax = max(t.BytesMax, c.Bytes)
		t.MsgsMax = max(t.MsgsMax, c.Msgs)
		t.TaskBytesMax = max(t.TaskBytesMax, c.TaskBytes)
		t.TaskMsgsMax = max(t.TaskMsgsMax, c.TaskMsgs)
		t.MaxMsg = max(t.MaxMsg, c.MaxMsg)
		t.MaxRPC = max(t.MaxRPC, c.MaxRPC)
		t.QueueDrops += c.QueueDrops
		t.SendDrops += c.SendDrops
		if c.TaskMsgs > 0 && t.TaskSize == 0 {
			t.TaskSize = c.TaskBytes / c.TaskMsgs
		}
	}
	n := float64(len(up))
	t.BytesMean /= n
	t.MsgsMean /= n
	t.TaskBytesMean /= n
	t.TaskMsgsMean /= n
	t.PresenceMsgsMean /= n
	t.PresenceBytesMean /= n
	t.PresenceInMean /= n
	return t
}

// curveSteps is how many points a completeness curve has at most.
const curveSteps = 200

// curve samples the share of nodes reached and answered over time.
func curve(delivered, answered []time.Duration, nd, na int) []Point {
	end := time.Duration(0)
	for _, d := range append(slices.Clone(delivered), answered...) {
		end = max(end, d)
	}
	if end == 0 || nd == 0 {
		return nil
	}
	dd, ad := slices.Clone(delivered), slices.Clone(answered)
	slices.Sort(dd)
	slices.Sort(ad)
	step := max(end/curveSteps, time.Millisecond)
	var out []Point
	i, j := 0, 0
	for at := time.Duration(0); ; at += step {
		for i < len(dd) && dd[i] <= at {
			i++
		}
		for j < len(ad) && ad[j] <= at {
			j++
		}
		out = append(out, Point{At: Millis(at), Delivered: float64(i) / float64(nd),
			Answered: float64(j) / float64(max(na, 1))})
		if at >= end {
			return out
		}
	}
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	st := r.Setup
	fmt.Fprintf(&b, "huntmesh sim: %d nodes, links %s±%s, loss %.1f%%, degree %d, cpus %d\n",
		r.Nodes, st.Latency, st.Jitter, 100*st.Loss, st.Degree, st.CPUs)
	fmt.Fprintf(&b, "  presence every %s, heartbeat %s, catch-up every %s, queues %d/%d\n",
		st.PresenceInterval, st.Heartbeat, st.SyncInterval, st.ValidateQueue, st.PeerQueue)
	fmt.Fprintf(&b, "  startup %s; heap %.1f MiB per node (%.0f MiB total), %d goroutines per node\n",
		st.Startup, mib(st.HeapPerNode), mib(st.HeapTotal), st.GoroutinesPerNode)
	stt := st.StartupTraffic
	fmt.Fprintf(&b, "  startup gossip per node: %.0f B, %.0f msgs sent (%.0f presence); "+
		"%.0f announcements received; %d queue drops, %d send drops in all\n", stt.BytesMean,
		stt.MsgsMean, stt.PresenceMsgsMean, stt.PresenceInMean, stt.QueueDrops, stt.SendDrops)
	fmt.Fprintf(&b, "%s %s from %s\n", cmp.Or(r.Kind, "hunt"), r.Task, r.From)
	if q := r.Query; q != nil {
		fmt.Fprintf(&b, "  query %q", q.Expr)
		if len(q.GroupBy) > 0 {
			fmt.Fprintf(&b, " grouped by %s", strings.Join(q.GroupBy, ","))
		}
		fmt.Fprintf(&b, ": %d rows, %d groups merged\n", q.Rows, q.Groups)
		for _, g := range q.Rarest {
			fmt.Fprintf(&b, "    %-40s %6d on %d hosts\n", strings.Join(g.Key, " "), g.Count,
				len(g.Hosts))
		}
	}
	writeLatency(&b, "  delivery", r.Delivery)
	if r.HeldFor > 0 {
		fmt.Fprintf(&b, "  work held until every node had the task: %s; answers timed from then\n",
			r.HeldFor)
	}
	writeLatency(&b, "  answers ", r.Answers)
	if r.HeldFor > 0 {
		writeLatency(&b, "  answers since issue", r.AnswersSinceIssue)
	}
	c := r.Completeness
	fmt.Fprintf(&b, "  completeness: %d/%d answered", c.Answered, c.Expected)
	if len(c.Silent) > 0 {
		fmt.Fprintf(&b, ", %d silent (%s)", len(c.Silent), firstNames(c.Silent, 8))
	}
	if len(c.Working) > 0 {
		fmt.Fprintf(&b, ", %d still working", len(c.Working))
	}
	b.WriteString("\n")
	t := r.Traffic
	fmt.Fprintf(&b, "  gossip sent per node: %.0f B mean, %d B max, %.1f msgs mean, %d max\n",
		t.BytesMean, t.BytesMax, t.MsgsMean, t.MsgsMax)
	fmt.Fprintf(&b, "  task topic per node: %.0f B mean, %d B max, %.1f copies mean "+
		"(task message %d B)\n", t.TaskBytesMean, t.TaskBytesMax, t.TaskMsgsMean, t.TaskSize)
	fmt.Fprintf(&b, "  presence per node: %.0f B, %.1f msgs sent, %.1f announcements received\n",
		t.PresenceBytesMean, t.PresenceMsgsMean, t.PresenceInMean)
	fmt.Fprintf(&b, "  largest gossip message sent %d B, largest RPC %d B (cap 64 KiB)\n",
		t.MaxMsg, t.MaxRPC)
	if t.QueueDrops > 0 || t.SendDrops > 0 {
		fmt.Fprintf(&b, "  drops: %d messages refused for a full validation queue, "+
			"%d RPCs dropped (peer queue full or not open)\n", t.QueueDrops, t.SendDrops)
	}
	for _, pct := range []float64{0.5, 0.9, 0.99, 1} {
		if at, ok := reachedAt(r.Curve, pct); ok {
			fmt.Fprintf(&b, "  %3.0f%% of nodes had the task at %s\n", 100*pct, at)
		}
	}
	if p := r.Partition; p != nil {
		fmt.Fprintf(&b, "partition: %d nodes cut off; %d of them got the task while cut\n",
			p.Minority, p.DuringCut)
		writeLatency(&b, "  majority while cut", p.Majority)
		writeLatency(&b, "  task to minority after heal", p.Healed)
		writeLatency(&b, "  intel to minority after heal", p.Intel)
		verdict := "within"
		if p.Intel.Missed > 0 || p.Intel.Max > p.IntelBound {
			verdict = "NOT within"
		}
		fmt.Fprintf(&b, "  intel convergence %s 3 heartbeats + 1 sync round trip (%s)\n",
			verdict, p.IntelBound)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report for tools.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeLatency(b *strings.Builder, name string, l Latency) {
	fmt.Fprintf(b, "%s: %d reached, %d missed; p50 %s p90 %s p99 %s max %s\n",
		name, l.Count, l.Missed, l.P50, l.P90, l.P99, l.Max)
}

// reachedAt returns when the delivered share first reached pct.
func reachedAt(c []Point, pct float64) (Millis, bool) {
	for _, p := range c {
		if p.Delivered >= pct {
			return p.At, true
		}
	}
	return 0, false
}

func firstNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", and %d more", len(names)-n)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
