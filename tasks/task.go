package tasks

import (
	"encoding/json"
	"time"
)

// Task kinds carried in an envelope.
const (
	TypeHunt   = "hunt"
	TypeQuery  = "query"
	TypeIntel  = "intel"
	TypeCancel = "cancel"
)

// Roles an analyst key can hold in a node's trust file. A key may only
// issue the task types its roles allow; admin allows everything.
const (
	RoleHunt  = "hunt"
	RoleQuery = "query"
	RoleIntel = "intel"
	RoleAdmin = "admin"
)

// Header is common to every task.
type Header struct {
	// ID is a ULID: unique, and sortable by issue time.
	ID string `json:"id"`

	// Type is one of the Type constants and must match the envelope's.
	Type string `json:"type"`

	// IssuedAt and NotAfter bound when nodes accept and act on the task.
	IssuedAt time.Time `json:"issued_at"`
	NotAfter time.Time `json:"not_after"`

	// Selector decides which nodes act on the task.
	Selector Selector `json:"selector"`

	// ReplyTo is the libp2p peer ID that results are streamed back to.
	ReplyTo string `json:"reply_to"`

	// Analyst is a free-form label of who asked, for the audit trail.
	Analyst string `json:"analyst,omitempty"`
}

// CollectorSpec names a collector and its parameters for one hunt.
type CollectorSpec struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Budget is what a hunt asks each node to stay within. The node's own
// ceiling wins where it is stricter.
type Budget struct {
	ReadBytesPerSec int64         `json:"read_bytes_per_sec,omitempty"`
	MaxRecords      int           `json:"max_records,omitempty"`
	WallTime        time.Duration `json:"wall_time,omitempty"`
	Nice            int           `json:"nice,omitempty"`
}

// Hunt asks nodes to run collectors and match what they find.
type Hunt struct {
	Header

	// Collectors to run, in order.
	Collectors []CollectorSpec `json:"collectors"`

	// IoCs carried by the hunt itself, merged with the node's intel set.
	IoCs []IoC `json:"iocs,omitempty"`

	// Root overrides the file system root collectors read under.
	Root string `json:"root,omitempty"`

	// Budget requested for each collector run.
	Budget Budget `json:"budget,omitzero"`

	// MaxRows caps the matching rows a node streams back; detections are
	// always sent up to this cap, other rows only when ReturnRecords is set.
	MaxRows int `json:"max_rows,omitempty"`

	// ReturnRecords asks nodes to stream back every record, not only the
	// detections (still capped by MaxRows).
	ReturnRecords bool `json:"return_records,omitempty"`

	// Rules are CEL detection rules applied to every record (chain.go).
	Rules []Rule `json:"rules,omitempty"`

	// Chains are chained rules: follow-up collection on a node when a
	// matching detection appears there (chain.go).
	Chains []Chain `json:"chains,omitempty"`

	// Every, when set, makes nodes run the hunt again at this interval
	// until NotAfter; each run's results carry the run number.
	Every time.Duration `json:"every,omitempty"`
}

// Status is a node's outcome for one task.
type Status string

// Outcomes a node reports for a task.
const (
	StatusReceived Status = "received"
	StatusDeclined Status = "declined"
	StatusRunning  Status = "running"
	StatusFinished Status = "finished"
	StatusFailed   Status = "failed"
)

// CollectorSummary reports one collector's run on one node.
type CollectorSummary struct {
	Name    string              `json:"name"`
	Emitted int                 `json:"emitted"`
	Skipped map[string]int      `json:"skipped,omitempty"`
	Samples map[string][]string `json:"samples,omitempty"`
	CutBy   string              `json:"cut_by,omitempty"`
	Error   string              `json:"error,omitempty"`
	Elapsed time.Duration       `json:"elapsed"`
}

// Result is what one node sends back for one task. Large answers travel as
// several Results with increasing Seq; the one with Final set closes it.
type Result struct {
	TaskID string `json:"task_id"`

	// Node is the answering node's peer ID; it must match the key that
	// signed the result.
	Node string `json:"node"`

	// Host is the answering node's host name.
	Host string `json:"host"`

	// Labels are the answering node's labels.
	Labels map[string]string `json:"labels,omitempty"`

	// Seq orders the parts of one node's answer, from 0.
	Seq int `json:"seq"`

	// Final marks the last part.
	Final bool `json:"final"`

	Status Status `json:"status"`

	// Reason explains a declined or failed status.
	Reason string `json:"reason,omitempty"`

	// Collectors summarises each collector run (in the final part).
	Collectors []CollectorSummary `json:"collectors,omitempty"`

	// Records and Detections are the rows of this part.
	Records    []Record    `json:"records,omitempty"`
	Detections []Detection `json:"detections,omitempty"`

	// TotalRecords and TotalDetections count everything the node found and
	// stored, including rows not sent because of MaxRows.
	TotalRecords    int `json:"total_records"`
	TotalDetections int `json:"total_detections"`

	// SentAt is the answering node's clock when the part was sent.
	SentAt time.Time `json:"sent_at"`

	// Groups are a query's partial stacking groups (query.go).
	Groups []Group `json:"groups,omitempty"`

	// Digest is the hex SHA-256 over the rows the node found, so two
	// answers can be compared without the rows.
	Digest string `json:"digest,omitempty"`

	// Pages, on a summary, says the answer is held in this many parts that
	// the issuer pulls (Seq 0 to Pages-1); the summary carries no rows.
	Pages int `json:"pages,omitempty"`

	// Receipt marks a signed progress note: the node took the task and is
	// waiting for a slot (StatusReceived) or working on it (StatusRunning).
	// A receipt carries no rows, is never Final and is not stored as a part.
	Receipt bool `json:"receipt,omitempty"`
}
