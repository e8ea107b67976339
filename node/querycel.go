package node

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/huntmesh/huntmesh/tasks"
)

// queryCostLimit bounds the CEL work one query may do on one record. A
// comparison or field access costs about 1; 100,000 allows generous list
// comprehensions over a record yet stops a runaway nested one at once.
const queryCostLimit = 100_000

// ErrCostLimit marks a query stopped by its CEL cost limit.
var ErrCostLimit = errors.New("query stopped by its cost limit")

// errRecordEval marks an expression that failed on one record (a key
// fields["x"] the record lacks, a value of another type than compared):
// the record does not match, the query goes on, and the answer says how
// many records failed so and why.
var errRecordEval = errors.New("evaluate query")

// fieldKind is the CEL type a query field is declared with.
type fieldKind int

const (
	fieldString fieldKind = iota
	fieldInt
	fieldBool
	fieldList
	fieldTime
)

// queryFields declares every record field a query names directly, with
// its type, following collectors/schema.go. A field a record lacks reads
// as its type's zero value ("" / 0 / false / []), so a query over mixed
// kinds needs no has() guards. Other fields are reachable as
// fields["name"].
var queryFields = func() map[string]fieldKind {
	m := map[string]fieldKind{}
	add := func(k fieldKind, names string) {
		for _, f := range strings.Fields(names) {
			m[f] = k
		}
	}
	add(fieldString, `kind host collector source
		name exe cmdline user cwd started exe_sha256 parent_name parent_exe process_key
		protocol local_address remote_address state process_name process_exe
		path mode owner mtime ctime atime md5 sha1 sha256 file_type content command
		home shell last_login last_login_from
		hostname os platform platform_version kernel arch boot_time
		event method source_address program message facility priority unit
		operation category status caller caller_address subscription resource_group
		resource resource_type location correlation_id
		src_address dst_address action rule title severity blob_sha256 what provider type`)
	add(fieldInt, `pid ppid local_port remote_port size uid gid source_port src_port dst_port
		bytes_out bytes_in event_id address offset region_size`)
	add(fieldBool, `exe_deleted uid0`)
	add(fieldList, `yara sudo groups interfaces addresses labels map`)
	add(fieldTime, `time`)
	return m
}()

// detectionFields are declared besides the record's fields when a query
// runs over detections.
var detectionFields = map[string]fieldKind{
	"ioc_type": fieldString, "ioc_value": fieldString, "severity": fieldString,
	"tags": fieldList, "field": fieldString,
}

// QueryFields lists the field names a query may use, sorted; detections
// adds the detection's own fields.
func QueryFields(detections bool) []string {
	out := make([]string, 0, len(queryFields)+len(detectionFields)+1)
	for f := range queryFields {
		out = append(out, f)
	}
	if detections {
		for f := range detectionFields {
			if _, dup := queryFields[f]; !dup {
				out = append(out, f)
			}
		}
	}
	out = append(out, "fields")
	slices.Sort(out)
	return out
}

var (
	queryEnvOnce sync.Once
	queryEnvs    [2]*cel.Env
	queryEnvErr  error
)

// queryEnv returns the CEL environment of record (or detection) queries.
func queryEnv(detections bool) (*cel.Env, error) {
	queryEnvOnce.Do(func() {
		for i, det := range []bool{false, true} {
			var opts []cel.EnvOption
			for _, name := range QueryFields(det) {
				opts = append(opts, cel.Variable(name, celType(fieldType(name, det))))
			}
			queryEnvs[i], queryEnvErr = cel.NewEnv(opts...)
			if queryEnvErr != nil {
				return
			}
		}
	})
	i := 0
	if detections {
		i = 1
	}
	return queryEnvs[i], queryEnvErr
}

// fieldType is a declared field's kind; fields is the catch-all map.
func fieldType(name string, detections bool) fieldKind {
	if detections {
		if k, ok := detectionFields[name]; ok {
			return k
		}
	}
	if k, ok := queryFields[name]; ok {
		return k
	}
	return -1
}

func celType(k fieldKind) *cel.Type {
	switch k {
	case fieldString:
		return cel.StringType
	case fieldInt:
		return cel.IntType
	case fieldBool:
		return cel.BoolType
	case fieldList:
		return cel.ListType(cel.StringType)
	case fieldTime:
		return cel.TimestampType
	}
	return cel.MapType(cel.StringType, cel.DynType)
}

// CompiledQuery is a query's expression compiled for evaluation, and the
// fields it stacks by.
type CompiledQuery struct {
	prg        cel.Program
	groupBy    []string
	detections bool

	// evalErrors counts the records the expression failed on; the first
	// error is kept for the answer. A compiled query serves one scan.
	evalErrors   int
	firstEvalErr error

	// kind and host are equalities the expression requires at its top
	// level (kind == "connection" && ...): the store checks them on each
	// value's header, so rows of other kinds or hosts are never decoded.
	kind, host string
}

// CompileQuery compiles a query expression and checks its group-by
// fields. Errors name the position in the expression, and an unknown
// field is named as such.
func CompileQuery(expr string, groupBy []string, detections bool) (*CompiledQuery, error) {
	env, err := queryEnv(detections)
	if err != nil {
		return nil, fmt.Errorf("query environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		msg := iss.Err().Error()
		if strings.Contains(msg, "undeclared reference") {
			msg += "\n(unknown field: see 'huntmesh query --fields'; others are fields[\"name\"])"
		}
		return nil, fmt.Errorf("compile query: %s", msg)
	}
	if err := checkCondition(expr, ast); err != nil {
		return nil, fmt.Errorf("compile query: %w", err)
	}
	prg, err := env.Program(ast, cel.CostLimit(queryCostLimit),
		cel.EvalOptions(cel.OptTrackCost))
	if err != nil {
		return nil, fmt.Errorf("plan query: %w", err)
	}
	for _, f := range groupBy {
		if k := fieldType(f, detections); k < 0 {
			return nil, fmt.Errorf("group by %q: unknown field", f)
		}
	}
	cq := &CompiledQuery{prg: prg, groupBy: groupBy, detections: detections}
	cq.kind, cq.host = requiredEqualities(ast.NativeRep().Expr())
	return cq, nil
}

// requiredEqualities finds `kind == "x"` and `host == "x"` among the
// top-level conjuncts of e (either side may hold the literal). A row that
// fails one of them fails the whole expression, so the scan may skip it.
func requiredEqualities(e celast.Expr) (kind, host string) {
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		switch {
		case call.FunctionName() == operators.LogicalAnd && len(args) == 2:
			walk(args[0])
			walk(args[1])
		case call.FunctionName() == operators.Equals && len(args) == 2:
			id, lit := args[0], args[1]
			if id.Kind() != celast.IdentKind {
				id, lit = lit, id
			}
			if id.Kind() != celast.IdentKind || lit.Kind() != celast.LiteralKind {
				return
			}
			v, ok := lit.AsLiteral().(types.String)
			if !ok {
				return
			}
			switch id.AsIdent() {
			case "kind":
				kind = string(v)
			case "host":
				host = string(v)
			}
		}
	}
	walk(e)
	return kind, host
}

// Match evaluates the query on one record (det is nil unless the query
// runs over detections). A cost overrun wraps ErrCostLimit and should end
// the query; any other error concerns this record alone.
func (q *CompiledQuery) Match(rec *tasks.Record, det *tasks.Detection) (bool, uint64, error) {
	act := &rowActivation{rec: rec, det: det}
	val, details, err := q.prg.Eval(act)
	var cost uint64
	if details != nil && details.ActualCost() != nil {
		cost = *details.ActualCost()
	}
	if err != nil {
		if strings.Contains(err.Error(), "cost limit") {
			return false, cost, fmt.Errorf("%w (%d per record): %w", ErrCostLimit,
				queryCostLimit, err)
		}
		return false, cost, fmt.Errorf("%w: %w", errRecordEval, err)
	}
	b, ok := val.(types.Bool)
	return ok && bool(b), cost, nil
}

// noteEvalError counts a record the expression failed on.
func (q *CompiledQuery) noteEvalError(err error) {
	if q.evalErrors == 0 {
		q.firstEvalErr = err
	}
	q.evalErrors++
}

// GroupKey returns the values of the group-by fields of a row, as text.
func (q *CompiledQuery) GroupKey(rec *tasks.Record, det *tasks.Detection) []string {
	act := &rowActivation{rec: rec, det: det}
	key := make([]string, len(q.groupBy))
	for i, f := range q.groupBy {
		v, _ := act.ResolveName(f)
		key[i] = valueText(v)
	}
	return key
}

func valueText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case []string:
		return strings.Join(x, ",")
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// rowActivation resolves a query's variables from one record lazily, so
// that a record pays only for the fields the expression reads.
type rowActivation struct {
	rec *tasks.Record
	det *tasks.Detection
}

// ResolveName implements interpreter.Activation.
func (a *rowActivation) ResolveName(name string) (any, bool) {
	r := a.rec
	switch name {
	case "kind":
		return r.Kind, true
	case "host":
		return r.Host, true
	case "collector":
		return r.Collector, true
	case "source":
		if s := r.Str("source"); s != "" {
			return s, true
		}
		return r.Source, true
	case "time":
		return r.Time, true
	case "fields":
		if r.Fields == nil {
			return map[string]any{}, true
		}
		return r.Fields, true
	}
	if a.det != nil {
		switch name {
		case "ioc_type":
			return a.det.IoCType, true
		case "ioc_value":
			return a.det.IoCValue, true
		case "severity":
			return a.det.Severity, true
		case "tags":
			return nonNil(a.det.Tags), true
		case "field":
			return a.det.Field, true
		}
	}
	k, ok := queryFields[name]
	if !ok {
		return nil, false
	}
	switch k {
	case fieldInt:
		n, _ := r.Int(name)
		return n, true
	case fieldBool:
		b, _ := r.Fields[name].(bool)
		return b, true
	case fieldList:
		return nonNil(r.Strs(name)), true
	}
	if s, ok := r.Fields[name].(string); ok {
		return s, true
	}
	if v, ok := r.Fields[name]; ok && v != nil {
		return fmt.Sprint(v), true
	}
	return "", true
}

// Parent implements interpreter.Activation.
func (a *rowActivation) Parent() interpreter.Activation { return nil }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
