// hcl_inspect: parses Terraform files with HashiCorp's own HCL parser (hclsyntax, the package
// Terraform uses) and prints, as JSON on stdout, every block, every attribute, the references
// each attribute's expression makes, its value when it is a constant, and the first argument of
// every function call in it. tests/tools/check_deploy.py reads that to check deploy/terraform/.
//
//	hcl_inspect [-var NAME=VALUE]... FILE.tf...
//
// With -var, each attribute also gets "eval": its value when var.NAME is VALUE and every other
// reference stands for itself as a string ("aws_lambda_layer_version.stash_arm64.arn"), which
// shows which resource a conditional picks for a given input.
// A syntax error is printed with its file and line, and the exit status is 1.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

type call struct {
	Name string `json:"name"`
	// The first argument's value when it can be computed with only path.module/path.root
	// known (a file name, typically); null otherwise.
	Arg0 json.RawMessage `json:"arg0"`
}

type attr struct {
	Line int `json:"line"`
	// Each reference as its traversal: ["aws_iam_role", "example", "arn"], ["var", "x"].
	Refs [][]string `json:"refs"`
	// The value when the expression is a constant (or only uses path.*); null otherwise.
	Value json.RawMessage `json:"value"`
	// With -var: the value with those variables set and other references as their names.
	Eval  json.RawMessage `json:"eval,omitempty"`
	Calls []call          `json:"calls"`
}

type block struct {
	Type   string          `json:"type"`
	Labels []string        `json:"labels"`
	Line   int             `json:"line"`
	Attrs  map[string]attr `json:"attrs"`
	Blocks []block         `json:"blocks"`
}

type file struct {
	File   string          `json:"file"`
	Attrs  map[string]attr `json:"attrs"`
	Blocks []block         `json:"blocks"`
}

func traversalNames(t hcl.Traversal) []string {
	var out []string
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			out = append(out, s.Name)
		case hcl.TraverseAttr:
			out = append(out, s.Name)
		case hcl.TraverseIndex:
			// An index ends the name: resource.name[0].arn is a reference to resource.name.
			return out
		case hcl.TraverseSplat:
			return out
		}
	}
	return out
}

func valueJSON(v cty.Value) json.RawMessage {
	if !v.IsWhollyKnown() {
		return nil
	}
	b, err := ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
	if err != nil {
		return nil
	}
	return b
}

// The -var values, by name.
var inputs = map[string]string{}

// placeholders builds, from an expression's references, the objects that make each one evaluate
// to its own dotted name, except var.NAME given by -var, which is its value.
func placeholders(refs [][]string, base map[string]cty.Value) map[string]cty.Value {
	tree := map[string]interface{}{}
	for _, r := range refs {
		node := tree
		for i, name := range r {
			if i == len(r)-1 {
				if _, isObj := node[name].(map[string]interface{}); !isObj {
					node[name] = strings.Join(r, ".")
				}
				break
			}
			next, ok := node[name].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				node[name] = next
			}
			node = next
		}
	}
	if v, ok := tree["var"].(map[string]interface{}); ok {
		for name, val := range inputs {
			v[name] = val
		}
	}
	var conv func(interface{}) cty.Value
	conv = func(n interface{}) cty.Value {
		if s, ok := n.(string); ok {
			return cty.StringVal(s)
		}
		m := map[string]cty.Value{}
		for k, v := range n.(map[string]interface{}) {
			m[k] = conv(v)
		}
		return cty.ObjectVal(m)
	}
	out := map[string]cty.Value{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range tree {
		if _, taken := out[k]; !taken {
			out[k] = conv(v)
		}
	}
	return out
}

func inspectAttr(a *hclsyntax.Attribute, ctx *hcl.EvalContext) attr {
	out := attr{Line: a.SrcRange.Start.Line, Refs: [][]string{}, Calls: []call{}}
	for _, t := range hclsyntax.Variables(a.Expr) {
		out.Refs = append(out.Refs, traversalNames(t))
	}
	if v, diags := a.Expr.Value(ctx); !diags.HasErrors() {
		out.Value = valueJSON(v)
	}
	if len(inputs) > 0 {
		ectx := &hcl.EvalContext{Variables: placeholders(out.Refs, ctx.Variables)}
		if v, diags := a.Expr.Value(ectx); !diags.HasErrors() {
			out.Eval = valueJSON(v)
		}
	}
	_ = hclsyntax.VisitAll(a.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
		fc, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok {
			return nil
		}
		c := call{Name: fc.Name}
		if len(fc.Args) > 0 {
			if v, diags := fc.Args[0].Value(ctx); !diags.HasErrors() {
				c.Arg0 = valueJSON(v)
			}
		}
		out.Calls = append(out.Calls, c)
		return nil
	})
	return out
}

func inspectBody(b *hclsyntax.Body, ctx *hcl.EvalContext) (map[string]attr, []block) {
	attrs := map[string]attr{}
	names := make([]string, 0, len(b.Attributes))
	for name := range b.Attributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		attrs[name] = inspectAttr(b.Attributes[name], ctx)
	}
	blocks := []block{}
	for _, blk := range b.Blocks {
		a, nested := inspectBody(blk.Body, ctx)
		labels := blk.Labels
		if labels == nil {
			labels = []string{}
		}
		blocks = append(blocks, block{Type: blk.Type, Labels: labels,
			Line: blk.TypeRange.Start.Line, Attrs: a, Blocks: nested})
	}
	return attrs, blocks
}

func main() {
	args := os.Args[1:]
	for len(args) >= 2 && args[0] == "-var" {
		kv := strings.SplitN(args[1], "=", 2)
		if len(kv) != 2 {
			fmt.Fprintln(os.Stderr, "hcl_inspect: -var takes NAME=VALUE")
			os.Exit(2)
		}
		inputs[kv[0]] = kv[1]
		args = args[2:]
	}
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: hcl_inspect [-var NAME=VALUE]... FILE.tf...")
		os.Exit(2)
	}
	var files []file
	failed := false
	for _, name := range args {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hcl_inspect: %v\n", err)
			os.Exit(1)
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.Pos{Line: 1, Column: 1})
		if diags.HasErrors() {
			for _, d := range diags {
				fmt.Fprintf(os.Stderr, "hcl_inspect: %s\n", d.Error())
			}
			failed = true
			continue
		}
		dir := filepath.Dir(name)
		// path.module and path.root as Terraform sets them for a root module run in its folder.
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
			"path": cty.ObjectVal(map[string]cty.Value{
				"module": cty.StringVal(dir),
				"root":   cty.StringVal(dir),
			}),
		}}
		body := f.Body.(*hclsyntax.Body)
		a, blocks := inspectBody(body, ctx)
		files = append(files, file{File: name, Attrs: a, Blocks: blocks})
	}
	if failed {
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(files); err != nil {
		fmt.Fprintf(os.Stderr, "hcl_inspect: %v\n", err)
		os.Exit(1)
	}
}
