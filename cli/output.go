package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/node"
	"github.com/huntmesh/huntmesh/tasks"
)

// printer writes a task's answers as they arrive, in one of three formats.
type printer struct {
	format string
	w      io.Writer
	csv    *csv.Writer
	header bool

	// query words a node's status line as matching rows, not findings.
	query bool
}

func newPrinter(format string, w io.Writer) (*printer, error) {
	p := &printer{format: format, w: w}
	switch format {
	case "table":
	case "ndjson":
	case "csv":
		p.csv = csv.NewWriter(w)
	default:
		return nil, fmt.Errorf("--output %q: want table, ndjson or csv", format)
	}
	return p, nil
}

func (p *printer) started(id string) {
	if p.format == "table" {
		fmt.Fprintf(p.w, "task %s sent\n", id)
	}
}

// row is one line of output: a detection, a record, or a node's status.
type row struct {
	Type     string        `json:"type"`
	TaskID   string        `json:"task_id"`
	Host     string        `json:"host"`
	Node     string        `json:"node"`
	Status   tasks.Status  `json:"status,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	IoC      string        `json:"ioc,omitempty"`
	Field    string        `json:"field,omitempty"`
	Kind     string        `json:"kind,omitempty"`
	Time     time.Time     `json:"time,omitzero"`
	Summary  string        `json:"summary,omitempty"`
	Record   *tasks.Record `json:"record,omitempty"`
	Records  int           `json:"records,omitempty"`
	Detected int           `json:"detections,omitempty"`
	Skipped  string        `json:"skipped,omitempty"`
}

func (p *printer) result(r *tasks.Result) {
	for i := range r.Detections {
		d := &r.Detections[i]
		p.emit(row{Type: "detection", TaskID: r.TaskID, Host: r.Host, Node: r.Node,
			IoC: d.IoCType + ":" + d.IoCValue, Field: d.Field, Kind: d.Record.Kind,
			Time: d.Record.Time, Summary: d.Record.Summary(), Record: &d.Record})
	}
	for i := range r.Records {
		rec := &r.Records[i]
		p.emit(row{Type: "record", TaskID: r.TaskID, Host: r.Host, Node: r.Node,
			Kind: rec.Kind, Time: rec.Time, Summary: rec.Summary(), Record: rec})
	}
	if r.Final {
		p.emit(row{Type: "status", TaskID: r.TaskID, Host: r.Host, Node: r.Node, Status: r.Status,
			Reason: r.Reason, Records: r.TotalRecords, Detected: r.TotalDetections,
			Skipped: skippedText(r.Collectors)})
	}
}

// skippedText sums skip counts over collectors: nothing skipped may look
// clean, so the answer says what was passed over.
func skippedText(cs []tasks.CollectorSummary) string {
	total := map[string]int{}
	var cuts []string
	for _, c := range cs {
		for k, v := range c.Skipped {
			total[k] += v
		}
		if c.CutBy != "" {
			cuts = append(cuts, c.Name+" cut by "+c.CutBy)
		}
		if c.Error != "" {
			cuts = append(cuts, c.Name+" failed: "+c.Error)
		}
	}
	keys := make([]string, 0, len(total))
	for k := range total {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+len(cuts))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, total[k]))
	}
	return strings.Join(append(parts, cuts...), " ")
}

func (p *printer) emit(r row) {
	switch p.format {
	case "ndjson":
		b, _ := json.Marshal(r)
		fmt.Fprintln(p.w, string(b))
	case "csv":
		if !p.header {
			p.csv.Write([]string{"type", "task_id", "host", "status", "ioc", "field", "kind",
				"time", "summary", "records", "detections", "skipped", "reason", "fields"})
			p.header = true
		}
		// The record's own fields travel as one JSON object, so that no
		// kind's schema is lost to a fixed set of columns.
		fields := ""
		if r.Record != nil && len(r.Record.Fields) > 0 {
			if b, err := json.Marshal(r.Record.Fields); err == nil {
				fields = string(b)
			}
		}
		p.csv.Write([]string{r.Type, r.TaskID, r.Host, string(r.Status), r.IoC, r.Field, r.Kind,
			timeText(r.Time), r.Summary, fmt.Sprint(r.Records), fmt.Sprint(r.Detected), r.Skipped,
			r.Reason, fields})
		p.csv.Flush()
	default:
		// Rows stream as they arrive, so columns have fixed widths rather
		// than widths measured over the whole answer.
		const layout = "%-12s %-11s %-10s %-34s %-14s %s\n"
		if !p.header {
			fmt.Fprintf(p.w, layout, "HOST", "WHAT", "KIND", "IOC", "FIELD", "DETAIL")
			p.header = true
		}
		switch r.Type {
		case "detection":
			fmt.Fprintf(p.w, layout, r.Host, "DETECTION", r.Kind, clip(r.IoC, 34), r.Field,
				clip(r.Summary, 100))
		case "record":
			fmt.Fprintf(p.w, layout, r.Host, "record", r.Kind, "", "", clip(r.Summary, 100))
		default:
			detail := fmt.Sprintf("%d records, %d detections", r.Records, r.Detected)
			switch {
			case p.query:
				detail = fmt.Sprintf("%d matching rows", r.Records+r.Detected)
			case r.Detected == 0 && r.Status == tasks.StatusFinished && r.Skipped == "":
				detail = fmt.Sprintf("clean: %d records, no detection", r.Records)
			case r.Detected == 0 && r.Status == tasks.StatusFinished:
				// Something was passed over: not clean, only not found.
				detail = fmt.Sprintf("no detection in %d records", r.Records)
			}
			if r.Reason != "" {
				detail = r.Reason
			}
			if r.Skipped != "" {
				detail += "; skipped " + r.Skipped
			}
			fmt.Fprintf(p.w, layout, r.Host, strings.ToUpper(string(r.Status)), "", "", "", detail)
		}
	}
}

func (p *printer) completeness(c *node.Completeness) {
	statuses := make([]string, 0, len(c.ByStatus))
	for s, n := range c.ByStatus {
		statuses = append(statuses, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(statuses)
	silent := "none"
	if len(c.Silent) > 0 {
		silent = strings.Join(c.Silent, ", ")
	}
	switch p.format {
	case "ndjson":
		b, _ := json.Marshal(map[string]any{"type": "completeness", "completeness": c})
		fmt.Fprintln(p.w, string(b))
	case "csv":
	default:
		line := fmt.Sprintf("answered %d/%d live nodes (%s); silent: %s", c.Answered, c.Expected,
			strings.Join(statuses, ", "), silent)
		if c.OwnOnly {
			line = fmt.Sprintf("this node's own answer only (%s): another node issued the task "+
				"and holds the fleet's answers; run 'huntmesh results' there",
				strings.Join(statuses, ", "))
		}
		if len(c.Working) > 0 {
			line += "; still working: " + strings.Join(c.Working, ", ")
		}
		if c.Unexpected > 0 {
			line += fmt.Sprintf("; %d answers from nodes not seen live at send time", c.Unexpected)
		}
		fmt.Fprintln(p.w, line)
	}
}

func (p *printer) flush() {
	if p.csv != nil {
		p.csv.Flush()
	}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
