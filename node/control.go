package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// The control protocol: the client sends one JSON Request on a line and
// reads Response lines until one has Done set or carries an Error.

// maxRequestBytes bounds one control request line.
const maxRequestBytes = 1 << 20

// Request is one control-socket call.
type Request struct {
	// Op is info, peers, hunt (issue any signed task: hunt, query or
	// cancel), results, task (one task's outcome per node), tasks (the
	// active tasks), blob or intel.
	Op string `json:"op"`

	// Envelope is a signed task, for hunt.
	Envelope []byte `json:"envelope,omitempty"`

	// Wait is how long hunt waits for answers.
	Wait time.Duration `json:"wait,omitempty"`

	// TaskID names the task, for results and task.
	TaskID string `json:"task_id,omitempty"`

	// Intel is the request of op intel.
	Intel *IntelRequest `json:"intel,omitempty"`

	// Blob is the SHA-256 of stored evidence, for op blob.
	Blob string `json:"blob,omitempty"`
}

// Info describes the local node.
type Info struct {
	ID        string            `json:"id"`
	Host      string            `json:"host"`
	Addrs     []string          `json:"addrs"`
	Labels    map[string]string `json:"labels,omitempty"`
	Version   string            `json:"version"`
	LivePeers int               `json:"live_peers"`
	Counters  map[string]uint64 `json:"counters,omitempty"`
}

// Response is one line the node writes back.
type Response struct {
	Error        string         `json:"error,omitempty"`
	Info         *Info          `json:"info,omitempty"`
	Peers        []PeerView     `json:"peers,omitempty"`
	TaskID       string         `json:"task_id,omitempty"`
	Result       *tasks.Result  `json:"result,omitempty"`
	Completeness *Completeness  `json:"completeness,omitempty"`
	Intel        *IntelResponse `json:"intel,omitempty"`
	Chunk        []byte         `json:"chunk,omitempty"`
	Groups       []tasks.Group  `json:"groups,omitempty"`
	Task         *TaskStatus    `json:"task,omitempty"`
	Tasks        []TaskBrief    `json:"tasks,omitempty"`
	Done         bool           `json:"done,omitempty"`
}

// TaskBrief is one line of the active task list.
type TaskBrief struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	NotAfter time.Time `json:"not_after"`
	Issued   bool      `json:"issued,omitempty"`
}

// ServeControl listens on the control socket until ctx ends. The socket is
// created with mode 0600 so only the node's user can command it.
func (n *Node) ServeControl(ctx context.Context) error {
	path := SocketPath(n.cfg.DataDir)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return fmt.Errorf("protect control socket: %w", err)
	}
	n.log.Info("control socket ready", "path", path)

	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	for {
		conn, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				os.Remove(path)
				return nil
			}
			return fmt.Errorf("accept control connection: %w", err)
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer conn.Close()
			n.serveConn(ctx, conn)
		}()
	}
}

// serveConn answers one control request.
func (n *Node) serveConn(ctx context.Context, conn net.Conn) {
	enc := json.NewEncoder(conn)
	send := func(r Response) bool { return enc.Encode(r) == nil }

	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), maxRequestBytes)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if !sc.Scan() {
		if sc.Err() == nil {
			return // closed without a word: the CLI checking that a node runs
		}
		n.count("control/bad-request")
		send(Response{Error: "control request: " + sc.Err().Error(), Done: true})
		return
	}
	var req Request
	if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
		n.count("control/bad-request")
		send(Response{Error: "control request: not valid JSON: " + err.Error(), Done: true})
		return
	}
	conn.SetReadDeadline(time.Time{})

	switch req.Op {
	case "info":
		info := Info{ID: n.ID(), Host: n.cfg.Host, Addrs: n.Addrs(), Labels: n.cfg.Labels,
			Version: Version, LivePeers: len(n.LivePeers()) - 1, Counters: n.Counters()}
		send(Response{Info: &info, Done: true})
	case "peers":
		send(Response{Peers: n.Peers(), Done: true})
	case "hunt":
		n.serveHunt(ctx, req, send)
	case "results":
		n.serveResults(req, send)
	case "task":
		st, err := n.TaskStatus(req.TaskID)
		if err != nil {
			send(Response{Error: err.Error(), Done: true})
			return
		}
		send(Response{Task: st, Done: true})
	case "tasks":
		n.serveTasks(send)
	case "blob":
		n.serveBlob(req, send)
	case "intel":
		n.serveIntel(ctx, req.Intel, send)
	default:
		n.count("control/bad-request")
		send(Response{Error: fmt.Sprintf("control request: unknown op %q (want info, peers, hunt, results, task, tasks, blob, intel)",
			req.Op), Done: true})
	}
}

// serveHunt issues a signed task (a hunt, a query or a cancel) and streams
// its answers back until every live node answered or the wait ended. A
// query's merged stacking groups come with the completeness.
func (n *Node) serveHunt(ctx context.Context, req Request, send func(Response) bool) {
	wait := req.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	expected := n.LivePeers()
	c, err := n.IssueTask(ctx, req.Envelope)
	if err != nil {
		send(Response{Error: err.Error(), Done: true})
		return
	}
	if d := time.Until(c.Header.NotAfter); d < wait {
		wait = d
	}
	id := c.Header.ID
	send(Response{TaskID: id})
	stream := func(r *tasks.Result) {
		if !r.Receipt {
			send(Response{TaskID: id, Result: r})
		}
	}
	if c.Header.Type == tasks.TypeQuery {
		q, err := tasks.DecodeQuery(c.Envelope.Payload)
		if err != nil {
			send(Response{Error: err.Error(), Done: true})
			return
		}
		ans := n.awaitQuery(ctx, q, expected, wait, stream)
		send(Response{TaskID: id, Completeness: &ans.Completeness, Groups: ans.Groups,
			Done: true})
		return
	}
	comp := n.Await(ctx, id, expected, wait, stream)
	send(Response{TaskID: id, Completeness: &comp, Done: true})
}

// serveTasks lists the active tasks this node holds.
func (n *Node) serveTasks(send func(Response) bool) {
	active, err := n.store.ActiveTasks(time.Now())
	if err != nil {
		send(Response{Error: "tasks: " + err.Error(), Done: true})
		return
	}
	out := make([]TaskBrief, 0, len(active))
	for _, t := range active {
		out = append(out, TaskBrief{ID: t.ID, Type: t.Type, NotAfter: t.NotAfter, Issued: t.Issued})
	}
	send(Response{Tasks: out, Done: true})
}

func (n *Node) serveResults(req Request, send func(Response) bool) {
	if req.TaskID == "" {
		send(Response{Error: "results: task ID required", Done: true})
		return
	}
	rs, err := n.store.Results(req.TaskID)
	if err != nil {
		send(Response{Error: "results: " + err.Error(), Done: true})
		return
	}
	t, known, _ := n.store.Task(tasks.BaseID(req.TaskID))
	if len(rs) == 0 && !known {
		send(Response{Error: fmt.Sprintf("results: no task %s on this node", req.TaskID), Done: true})
		return
	}
	comp := Completeness{TaskID: req.TaskID, ByStatus: map[tasks.Status]int{},
		OwnOnly: known && !t.Issued}
	for i := range rs {
		send(Response{TaskID: req.TaskID, Result: &rs[i]})
		if rs[i].Final {
			comp.Answered++
			comp.ByStatus[rs[i].Status]++
		}
	}
	comp.Expected = comp.Answered
	send(Response{TaskID: req.TaskID, Completeness: &comp, Done: true})
}
