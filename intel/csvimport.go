package intel

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// csvTypes maps the type names found in flat indicator lists to IoC types.
// url_scheme ("stratum+tcp://") is taken as a command-line substring: a
// scheme alone only shows up in the arguments of the program using it.
var csvTypes = map[string]string{
	"ip": tasks.IoCIP, "ipv4": tasks.IoCIP, "ipv6": tasks.IoCIP, "ip-dst": tasks.IoCIP,
	"ip-src": tasks.IoCIP, "ipv4-addr": tasks.IoCIP, "ipv6-addr": tasks.IoCIP,
	"cidr": tasks.IoCCIDR, "network": tasks.IoCCIDR,
	"domain": tasks.IoCDomain, "hostname": tasks.IoCDomain, "fqdn": tasks.IoCDomain,
	"domain-name": tasks.IoCDomain,
	"url":         tasks.IoCURL, "uri": tasks.IoCURL,
	"md5": tasks.IoCMD5, "sha1": tasks.IoCSHA1, "sha-1": tasks.IoCSHA1,
	"sha256": tasks.IoCSHA256, "sha-256": tasks.IoCSHA256,
	"filename": tasks.IoCFileName, "file_name": tasks.IoCFileName, "file": tasks.IoCFileName,
	"path": tasks.IoCPath, "filepath": tasks.IoCPath, "file_path": tasks.IoCPath,
	"process": tasks.IoCProcess, "process_name": tasks.IoCProcess,
	"cmdline": tasks.IoCCmdline, "cmdline_substring": tasks.IoCCmdline,
	"command_line": tasks.IoCCmdline, "url_scheme": tasks.IoCCmdline,
	"cmdline-re": tasks.IoCCmdlineRE, "cmdline_regex": tasks.IoCCmdlineRE,
	"port": tasks.IoCPort, "yara": tasks.IoCYARA,
}

// csvColumns names the columns a header may hold.
type csvColumns struct {
	typ, value, port, severity, tags, expires, firstSeen, source int
}

// ImportCSV reads a flat indicator list with a header row naming at least
// "type" and "value"; "severity", "tags" (separated by ';' or '|'),
// "expires" and "first_seen" (RFC 3339), "source" and "port" are used when
// present, so that what 'intel export' writes reads back the same; other
// columns (comment, note) are ignored. Type
// names are matched case-insensitively with common aliases (ipv4,
// process_name, sha-256, ...). A port column with an address gives an
// address:port indicator, with an empty value a bare port; with a domain,
// the domain is taken and the port dropped. Lines starting with '#' are
// comments.
//
// A row the CSV reader cannot parse fails the whole import with an error
// naming the line.
func ImportCSV(r io.Reader) (Import, error) {
	data, err := readBounded(r, "csv")
	if err != nil {
		return Import{}, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = false

	header, err := cr.Read()
	if err != nil {
		return Import{}, csvError(err)
	}
	cols, err := csvHeader(header)
	if err != nil {
		return Import{}, err
	}

	// Read every row before taking anything.
	var rows [][]string
	var lines []int
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Import{}, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		rows = append(rows, row)
		lines = append(lines, line)
	}

	c := newCollector("csv")
	for i, row := range rows {
		c.csvRow(row, cols, fmt.Sprintf("line %d", lines[i]))
	}
	return c.imp, nil
}

// csvError names the line of a CSV parse error.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("parse csv: line %d: %w", pe.Line, pe.Err)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("parse csv: empty input, want a header row")
	}
	return fmt.Errorf("parse csv: %w", err)
}

// csvHeader locates the columns.
func csvHeader(header []string) (csvColumns, error) {
	cols := csvColumns{-1, -1, -1, -1, -1, -1, -1, -1}
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "type", "ioc_type", "indicator_type":
			cols.typ = i
		case "value", "ioc", "indicator":
			cols.value = i
		case "port":
			cols.port = i
		case "expires", "valid_until":
			cols.expires = i
		case "first_seen", "valid_from":
			cols.firstSeen = i
		case "source":
			cols.source = i
		case "severity":
			cols.severity = i
		case "tags", "tag":
			cols.tags = i
		}
	}
	if cols.typ < 0 || cols.value < 0 {
		return cols, fmt.Errorf("parse csv: header %q lacks a type or value column",
			strings.Join(header, ","))
	}
	return cols, nil
}

// cell is row[i], or "" when the column is absent or the row short.
func cell(row []string, i int) string {
	if i < 0 || i >= len(row) {
		return ""
	}
	return row[i]
}

// csvRow takes one row.
func (c *collector) csvRow(row []string, cols csvColumns, where string) {
	rawType := strings.TrimSpace(cell(row, cols.typ))
	what := strings.ToLower(rawType)
	typ, ok := csvTypes[what]
	if !ok {
		c.skip(what, where, "type has no matching record field")
		return
	}

	// Values keep their spaces for command-line fragments, where a leading
	// space is significant; everything else is trimmed by normalisation.
	value := cell(row, cols.value)
	port := strings.TrimSpace(cell(row, cols.port))
	ioc := tasks.IoC{Type: typ, Value: value, Source: "csv"}
	if s := strings.ToLower(strings.TrimSpace(cell(row, cols.severity))); severityRank(s) > 0 {
		ioc.Severity = s
	}
	for _, t := range strings.FieldsFunc(cell(row, cols.tags), func(r rune) bool {
		return r == ';' || r == '|'
	}) {
		ioc.Tags = addTag(ioc.Tags, strings.TrimSpace(t))
	}

	if src := strings.TrimSpace(cell(row, cols.source)); src != "" &&
		len(src) <= DefaultSetLimits().MaxTextLen {
		ioc.Source = src
	}
	for _, tc := range []struct {
		col  int
		name string
		to   *time.Time
	}{{cols.expires, "expires", &ioc.Expires}, {cols.firstSeen, "first_seen", &ioc.FirstSeen}} {
		e := strings.TrimSpace(cell(row, tc.col))
		if e == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, e)
		if err != nil {
			c.skip(what, where, tc.name+" is not an RFC 3339 time: "+e)
			return
		}
		*tc.to = t.UTC()
	}

	switch {
	case typ == tasks.IoCPort && strings.TrimSpace(value) == "":
		ioc.Value = port
	case port != "" && (typ == tasks.IoCIP):
		ioc.Type = tasks.IoCPort
		v := strings.TrimSpace(value)
		if strings.Contains(v, ":") {
			v = "[" + v + "]"
		}
		ioc.Value = v + ":" + port
	case typ == tasks.IoCIP && strings.Contains(value, "/"):
		ioc.Type = tasks.IoCCIDR
	}
	if ioc.Type == tasks.IoCYARA {
		// Nodes refuse an update whose rules libyara rejects; find out
		// here, so the rest of the file is not sent without it.
		if err := validateYARA("value", ioc.Value); err != nil {
			c.skip(what, where, err.Error())
			return
		}
	}
	c.take(what, where, ioc)
}
