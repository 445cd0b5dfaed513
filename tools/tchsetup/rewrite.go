package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Source rewrites applied to gotch's Go code after the patch series. They
// touch thousands of generated functions, so they are done by code rather
// than by a committed diff of gotch's sources.
//
//  1. Every function that calls into libtch locks its OS thread for the
//     call (torch's error slot and grad mode are thread-local) and keeps its
//     tensor and scalar arguments alive until it returns (runtime.KeepAlive), so a
//     finalizer can never free a tensor in the middle of a C call.
//  2. Methods that reach C panic with a clear message when called on a
//     freed tensor instead of dereferencing a null pointer in C++.
//  3. Output slots come from Go memory instead of a leaked C.malloc(0) that
//     C++ then wrote past.
//  4. In-place ops free the extra handle libtorch returns instead of
//     overwriting (and leaking) the receiver's handle.
//  5. log.Fatal becomes a panic, which callers can recover from.
func rewriteGo(gotch string) error {
	for _, pkg := range []string{"ts", "nn"} {
		files, err := filepath.Glob(filepath.Join(gotch, pkg, "*.go"))
		if err != nil {
			return err
		}
		for _, f := range files {
			base := filepath.Base(f)
			if strings.HasSuffix(base, "_test.go") {
				if err := os.Remove(f); err != nil {
					return err
				}
				continue
			}
			if strings.HasPrefix(base, "mollify") {
				continue
			}
			if err := rewriteFile(f, pkg == "ts"); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	return nil
}

var (
	mallocRe  = regexp.MustCompile(`(\w+) := \(\*lib\.(Ctensor|Civalue)\)\(unsafe\.Pointer\(C\.malloc\(0\)\)\)`)
	inplaceRe = regexp.MustCompile(`(?m)^(\s*)ts\.ctensor = \*ptr\s*$`)
	fatalRe   = regexp.MustCompile(`\blog\.Fatal(f?)\(`)
)

func rewriteFile(path string, isTS bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	src := string(b)
	generated := filepath.Base(path) == "tensor-generated.go"
	if isTS {
		// A slot that the code later frees cannot become Go memory.
		for _, m := range mallocRe.FindAllStringSubmatch(src, -1) {
			if regexp.MustCompile(`(?m)^\s*(defer )?C\.free\(unsafe\.Pointer\(` + m[1] + `\)\)`).MatchString(src) {
				return fmt.Errorf("%s frees the C.malloc(0) slot %s; patch that function by hand first", filepath.Base(path), m[1])
			}
		}
		src = mallocRe.ReplaceAllString(src, "var ${1}Buf [8]lib.${2}; ${1} := &${1}Buf[0]")
		if generated {
			src = inplaceRe.ReplaceAllString(src, "${1}lib.AtFree(*ptr) // in-place: ts keeps its handle")
		}
	}
	src = fatalRe.ReplaceAllString(src, "fatal$1(")

	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	type insertion struct {
		off  int
		text string
	}
	var ins []insertion
	if isTS {
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			body := src[fset.Position(fn.Body.Lbrace).Offset:fset.Position(fn.Body.Rbrace).Offset]
			if !strings.Contains(body, "lib.") {
				continue
			}
			var names []string
			isMethod := false
			if fn.Recv != nil {
				for _, f := range fn.Recv.List {
					if isTensorType(f.Type) {
						for _, n := range f.Names {
							names = append(names, n.Name)
							isMethod = n.Name == "ts"
						}
					}
				}
			}
			for _, f := range fn.Type.Params.List {
				if isTensorType(f.Type) {
					for _, n := range f.Names {
						if n.Name != "_" {
							names = append(names, n.Name)
						}
					}
				}
			}
			var t strings.Builder
			t.WriteString("\n\tmlfrt.LockOSThread()\n")
			if len(names) == 0 {
				t.WriteString("\tdefer mlfrt.UnlockOSThread()\n")
			} else {
				t.WriteString("\tdefer func() {\n\t\tmlfrt.UnlockOSThread()\n")
				for _, n := range names {
					fmt.Fprintf(&t, "\t\tmlfrt.KeepAlive(%s)\n", n)
				}
				t.WriteString("\t}()\n")
			}
			if isMethod && fn.Name.Name != "Drop" {
				fmt.Fprintf(&t, "\tif ts.ctensor == nil {\n\t\tpanic(freedTensorError(%q))\n\t}\n", fn.Name.Name)
			}
			ins = append(ins, insertion{fset.Position(fn.Body.Lbrace).Offset + 1, t.String()})
		}
		if len(ins) > 0 {
			// A second import declaration right after the package clause.
			pkgEnd := fset.Position(file.Name.End()).Offset
			ins = append(ins, insertion{pkgEnd, "\n\nimport mlfrt \"runtime\"\n"})
		}
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].off > ins[j].off })
	for _, in := range ins {
		src = src[:in.off] + in.text + src[in.off:]
	}
	// Drop a "log" import that only log.Fatal used.
	if !regexp.MustCompile(`\blog\.`).MatchString(stripImports(src)) {
		src = regexp.MustCompile(`(?m)^\s*"log"\s*\n`).ReplaceAllString(src, "")
		src = strings.Replace(src, "import \"log\"\n", "", 1)
	}
	return os.WriteFile(path, []byte(src), 0o644)
}

func stripImports(src string) string {
	return regexp.MustCompile(`(?s)import \(.*?\)`).ReplaceAllString(src, "")
}

func isTensorType(e ast.Expr) bool {
	switch t := e.(type) {
	case *ast.StarExpr:
		id, ok := t.X.(*ast.Ident)
		return ok && (id.Name == "Tensor" || id.Name == "Scalar")
	case *ast.ArrayType:
		return t.Len == nil && isTensorType(t.Elt)
	}
	return false
}
