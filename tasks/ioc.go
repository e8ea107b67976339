package tasks

import "time"

// IoC types understood by the matcher.
const (
	IoCMD5       = "md5"
	IoCSHA1      = "sha1"
	IoCSHA256    = "sha256"
	IoCIP        = "ip"         // one IPv4 or IPv6 address
	IoCCIDR      = "cidr"       // a network, 10.0.0.0/8 or 2001:db8::/32
	IoCDomain    = "domain"     // a DNS name; matches the name and its subdomains
	IoCURL       = "url"        // a URL, compared after normalisation
	IoCFileName  = "filename"   // a base name glob, deploy-*.ps1
	IoCPath      = "path"       // a full path glob, /opt/.cache/*
	IoCProcess   = "process"    // a process name, compared case-insensitively
	IoCCmdline   = "cmdline"    // a command-line substring
	IoCCmdlineRE = "cmdline-re" // a command-line regular expression (RE2)
	IoCPort      = "port"       // a remote port, or address:port
	IoCYARA      = "yara"       // YARA rule source
)

// IoC is one indicator of compromise.
type IoC struct {
	// Type is one of the IoC type constants.
	Type string `json:"type"`

	// Value is the indicator itself: a hash, an address, a glob, rule text.
	Value string `json:"value"`

	// Severity ranks a match: low, medium, high or critical.
	Severity string `json:"severity,omitempty"`

	// Source names where the indicator came from (a feed, a file, a hunt).
	Source string `json:"source,omitempty"`

	// Tags carry context such as the threat actor or ATT&CK technique IDs.
	Tags []string `json:"tags,omitempty"`

	// FirstSeen is when the indicator was first reported, if known.
	FirstSeen time.Time `json:"first_seen,omitzero"`

	// Expires is when the indicator stops being active; zero means never.
	Expires time.Time `json:"expires,omitzero"`
}

// Detection is a record that matched an IoC or rule.
type Detection struct {
	// TaskID is the task during which the match was made ("" for retro-hunts
	// and chained matches outside a task).
	TaskID string `json:"task_id,omitempty"`

	// Host is where the matching record was collected.
	Host string `json:"host"`

	// Time is the event time of the matching record.
	Time time.Time `json:"time"`

	// IoCType and IoCValue name the indicator that matched. For YARA matches
	// IoCValue is the rule name.
	IoCType  string `json:"ioc_type"`
	IoCValue string `json:"ioc_value"`

	// Severity is copied from the indicator.
	Severity string `json:"severity,omitempty"`

	// Tags are copied from the indicator.
	Tags []string `json:"tags,omitempty"`

	// Field names the record field that matched.
	Field string `json:"field"`

	// Record is the matching record.
	Record Record `json:"record"`
}
