package node

import (
	"fmt"
	"regexp"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// Checks that CEL's type checker cannot make where a value is dynamic (a
// rule's fields, a query's fields["name"]), run on every condition before
// it is accepted, so that a mistake is refused with its reason instead of
// matching nothing on every node.

// checkCondition refuses an expression that cannot be a condition, and
// one whose regular expression literal does not compile.
func checkCondition(src string, ast *cel.Ast) error {
	t := ast.OutputType()
	if !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return fmt.Errorf("%q yields %s, want a condition (true or false)", src, t)
	}
	e := ast.NativeRep().Expr()
	if t.IsExactType(cel.DynType) {
		if why := notCondition(e); why != "" {
			return fmt.Errorf("%q is %s, not a condition: compare it (remote_port == 3333) "+
				"or test it (has(...), in, matches)", src, why)
		}
	}
	return checkRegexLiterals(e)
}

// valueFunctions yield a value other than a bool whatever their operands.
var valueFunctions = map[string]bool{
	operators.Add: true, operators.Subtract: true, operators.Multiply: true,
	operators.Divide: true, operators.Modulo: true, operators.Negate: true,
	operators.Index: true, "size": true, "int": true, "uint": true, "double": true,
	"string": true, "bytes": true, "timestamp": true, "duration": true,
}

// notCondition says what e is when it can never yield true or false: a
// bare field, a literal other than a bool, arithmetic, an index, a list or
// a map. It returns "" when e may yield a bool.
func notCondition(e celast.Expr) string {
	switch e.Kind() {
	case celast.IdentKind:
		if queryFields[e.AsIdent()] != fieldBool { // exe_deleted alone is a condition
			return "the bare field " + e.AsIdent()
		}
	case celast.SelectKind:
		if !e.AsSelect().IsTestOnly() {
			return "the bare field " + e.AsSelect().FieldName()
		}
	case celast.LiteralKind:
		if _, ok := e.AsLiteral().(types.Bool); !ok {
			return "a constant"
		}
	case celast.ListKind:
		return "a list"
	case celast.MapKind:
		return "a map"
	case celast.CallKind:
		call := e.AsCall()
		if valueFunctions[call.FunctionName()] {
			return "a value (" + call.FunctionName() + ")"
		}
		if call.FunctionName() == operators.Conditional && len(call.Args()) == 3 {
			if why := notCondition(call.Args()[1]); why != "" {
				return why
			}
			return notCondition(call.Args()[2])
		}
	}
	return ""
}

// checkRegexLiterals compiles every literal pattern given to matches, so a
// bad one is refused here rather than failing on every record of every
// node. CEL's matches is RE2, as Go's regexp.
func checkRegexLiterals(e celast.Expr) error {
	var bad error
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if bad != nil || x.Kind() != celast.CallKind || x.AsCall().FunctionName() != "matches" {
			return
		}
		args := x.AsCall().Args()
		if len(args) == 0 || args[len(args)-1].Kind() != celast.LiteralKind {
			return
		}
		pat, ok := args[len(args)-1].AsLiteral().(types.String)
		if !ok {
			return
		}
		if _, err := regexp.Compile(string(pat)); err != nil {
			bad = fmt.Errorf("matches(%q): %w", string(pat), err)
		}
	}))
	return bad
}
