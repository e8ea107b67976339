package node

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/huntmesh/huntmesh/tasks"
)

// ruleCostLimit bounds the work one rule may do on one record, so that a
// signed but careless rule cannot stall a node.
const ruleCostLimit = 10_000

// ruleFields are the record fields a rule or chain condition names
// directly (see collectors/schema.go); every other field is reachable as
// fields["name"]. Record attributes kind, host, collector and source, and
// the detection's ioc_type, ioc_value, severity and tags, are declared too.
var ruleFields = []string{
	"pid", "ppid", "name", "exe", "cmdline", "user", "cwd", "started", "exe_sha256",
	"exe_deleted", "parent_name", "parent_exe", "process_key",
	"protocol", "local_address", "local_port", "remote_address", "remote_port", "state",
	"process_name", "process_exe",
	"path", "size", "mode", "uid", "gid", "owner", "mtime", "md5", "sha1", "sha256",
	"file_type", "yara", "content", "command",
	"uid0", "sudo", "groups", "last_login", "last_login_from", "home", "shell",
	"event", "method", "source_address", "source_port", "program",
	"message", "facility", "priority", "unit",
	"operation", "category", "status", "caller", "caller_address", "subscription",
	"resource_group", "resource", "resource_type", "location", "correlation_id",
	"src_address", "dst_address", "action", "rule", "src_port", "dst_port",
	"bytes_out", "bytes_in", "title", "event_id", "provider",
}

// ruleAttrs are declared besides the record fields.
var ruleAttrs = []string{"kind", "host", "collector", "source", "fields",
	"ioc_type", "ioc_value", "severity", "tags"}

var (
	ruleEnvOnce sync.Once
	ruleEnv     *cel.Env
	ruleEnvErr  error
)

// celEnv returns the shared CEL environment of rules and chain conditions.
func celEnv() (*cel.Env, error) {
	ruleEnvOnce.Do(func() {
		var opts []cel.EnvOption
		for _, f := range append(append([]string{}, ruleFields...), ruleAttrs...) {
			opts = append(opts, cel.Variable(f, cel.DynType))
		}
		ruleEnv, ruleEnvErr = cel.NewEnv(opts...)
	})
	return ruleEnv, ruleEnvErr
}

// condition is a compiled CEL condition.
type condition struct {
	prg cel.Program
}

// compileCondition compiles a boolean CEL expression over a record.
func compileCondition(src string) (*condition, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("compile %q: %w", src, iss.Err())
	}
	if err := checkCondition(src, ast); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	prg, err := env.Program(ast, cel.CostLimit(ruleCostLimit))
	if err != nil {
		return nil, fmt.Errorf("plan %q: %w", src, err)
	}
	return &condition{prg: prg}, nil
}

// eval reports whether the condition holds for rec (and d, when the
// condition is about a detection). An evaluation error, such as a field
// the record does not have compared with a number, counts as false.
func (c *condition) eval(rec *tasks.Record, d *tasks.Detection) bool {
	vars := make(map[string]any, len(ruleFields)+len(ruleAttrs))
	for _, f := range ruleFields {
		if v, ok := rec.Fields[f]; ok {
			vars[f] = v
		} else {
			vars[f] = types.NullValue
		}
	}
	vars["kind"], vars["host"] = rec.Kind, rec.Host
	vars["collector"], vars["source"] = rec.Collector, rec.Source
	vars["fields"] = rec.Fields
	vars["ioc_type"], vars["ioc_value"], vars["severity"] = "", "", ""
	vars["tags"] = []string{}
	if d != nil {
		vars["ioc_type"], vars["ioc_value"], vars["severity"] = d.IoCType, d.IoCValue,
			d.Severity
		if d.Tags != nil {
			vars["tags"] = d.Tags
		}
	}
	out, _, err := c.prg.Eval(vars)
	if err != nil {
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}

// compiledRule is a detection rule ready to run.
type compiledRule struct {
	rule tasks.Rule
	cond *condition
}

// compileRules compiles a hunt's detection rules.
func compileRules(rules []tasks.Rule) ([]compiledRule, error) {
	if err := tasks.ValidateRules(rules); err != nil {
		return nil, err
	}
	out := make([]compiledRule, 0, len(rules))
	for _, r := range rules {
		c, err := compileCondition(r.Expr)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		out = append(out, compiledRule{rule: r, cond: c})
	}
	return out, nil
}

// ruleDetections returns a detection for every rule rec satisfies.
func ruleDetections(rules []compiledRule, rec *tasks.Record) []tasks.Detection {
	var out []tasks.Detection
	for _, r := range rules {
		if !r.cond.eval(rec, nil) {
			continue
		}
		sev := r.rule.Severity
		if sev == "" {
			sev = "medium"
		}
		out = append(out, tasks.Detection{
			Host: rec.Host, Time: rec.Time, IoCType: "rule", IoCValue: r.rule.Name,
			Severity: sev, Tags: append([]string(nil), r.rule.Tags...), Record: *rec,
		})
	}
	return out
}
