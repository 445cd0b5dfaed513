package torchfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Python values as the unpickler builds them: nil (None), bool, int64,
// *big.Int, float64, string, []byte, tuple, *list, *dict, global, *object,
// plus whatever the hooks return.
type (
	tuple  []any
	list   struct{ items []any }
	global struct{ module, name string }
	// object is an instance of a class this package does not model.
	object struct {
		class global
		args  []any
		state any
	}
)

// dict is an insertion-ordered Python dict.
type dict struct {
	keys, vals []any
	index      map[any]int
}

func newDict() *dict { return &dict{index: map[any]int{}} }

func (d *dict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, float64, nil, global:
	default:
		return fmt.Errorf("unhashable dict key of type %T", k)
	}
	if i, ok := d.index[k]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func (g global) String() string { return g.module + "." + g.name }

// unpickler runs one pickle from data[pos:].
type unpickler struct {
	data   []byte
	pos    int
	stack  []any
	marks  []int
	memo   map[int]any
	persid func(pid any) (any, error)
	reduce func(fn global, args tuple) (any, error)
}

var errShort = errors.New("truncated pickle")

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || u.pos+n > len(u.data) {
		return nil, errShort
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readLine() (string, error) {
	i := strings.IndexByte(string(u.data[u.pos:min(len(u.data), u.pos+1<<16)]), '\n')
	if i < 0 {
		return "", errShort
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items pushed since the last MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

// run executes opcodes until STOP and returns the result.
func (u *unpickler) run() (any, error) {
	u.memo = map[int]any{}
	for {
		at := u.pos
		if u.pos >= len(u.data) {
			return nil, fmt.Errorf("pickle: %w at offset %d (no STOP)", errShort, at)
		}
		op := u.data[u.pos]
		u.pos++
		done, err := u.step(op)
		if err != nil {
			return nil, fmt.Errorf("pickle: opcode %q (0x%02x) at offset %d: %w", rune(op), op, at, err)
		}
		if done {
			v, err := u.pop()
			if err != nil {
				return nil, fmt.Errorf("pickle: STOP at offset %d: %w", at, err)
			}
			return v, nil
		}
	}
}

func (u *unpickler) step(op byte) (stop bool, err error) {
	le := binary.LittleEndian
	switch op {
	case 0x80: // PROTO
		b, err := u.read(1)
		if err != nil {
			return false, err
		}
		if b[0] > 5 {
			return false, fmt.Errorf("unsupported pickle protocol %d", b[0])
		}
	case 0x95: // FRAME: just a length hint
		_, err = u.read(8)
	case '.': // STOP
		return true, nil
	case '(': // MARK
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		_, err = u.pop()
	case '1': // POP_MARK
		_, err = u.popMark()
	case '2': // DUP
		var v any
		if v, err = u.top(); err == nil {
			u.push(v)
		}
	case 'N':
		u.push(nil)
	case 0x88:
		u.push(true)
	case 0x89:
		u.push(false)
	case 'J': // BININT
		var b []byte
		if b, err = u.read(4); err == nil {
			u.push(int64(int32(le.Uint32(b))))
		}
	case 'K': // BININT1
		var b []byte
		if b, err = u.read(1); err == nil {
			u.push(int64(b[0]))
		}
	case 'M': // BININT2
		var b []byte
		if b, err = u.read(2); err == nil {
			u.push(int64(le.Uint16(b)))
		}
	case 0x8a, 0x8b: // LONG1, LONG4
		var n int
		if op == 0x8a {
			var b []byte
			if b, err = u.read(1); err != nil {
				return false, err
			}
			n = int(b[0])
		} else {
			var b []byte
			if b, err = u.read(4); err != nil {
				return false, err
			}
			n = int(int32(le.Uint32(b)))
		}
		var b []byte
		if b, err = u.read(n); err == nil {
			u.push(decodeLong(b))
		}
	case 'I': // INT (text); I00/I01 are False/True
		var s string
		if s, err = u.readLine(); err != nil {
			return false, err
		}
		switch s {
		case "00":
			u.push(false)
		case "01":
			u.push(true)
		default:
			var v int64
			if v, err = strconv.ParseInt(s, 10, 64); err == nil {
				u.push(v)
			}
		}
	case 'L': // LONG (text)
		var s string
		if s, err = u.readLine(); err != nil {
			return false, err
		}
		b, ok := new(big.Int).SetString(strings.TrimSuffix(s, "L"), 10)
		if !ok {
			return false, fmt.Errorf("bad LONG %q", s)
		}
		u.push(normInt(b))
	case 'G': // BINFLOAT, big-endian
		var b []byte
		if b, err = u.read(8); err == nil {
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}
	case 'F': // FLOAT (text)
		var s string
		if s, err = u.readLine(); err != nil {
			return false, err
		}
		var f float64
		if f, err = strconv.ParseFloat(s, 64); err == nil {
			u.push(f)
		}
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		var b []byte
		if b, err = u.readSized(op); err != nil {
			return false, err
		}
		if !utf8.Valid(b) {
			return false, errors.New("invalid UTF-8 string")
		}
		u.push(string(b))
	case 'T', 'U': // BINSTRING, SHORT_BINSTRING: Python 2 str, read as latin-1 text
		var b []byte
		if b, err = u.readSized(op); err == nil {
			u.push(latin1(b))
		}
	case 'B', 'C', 0x8e: // BINBYTES, SHORT_BINBYTES, BINBYTES8
		var b []byte
		if b, err = u.readSized(op); err == nil {
			u.push(append([]byte(nil), b...))
		}
	case 'S': // STRING (text repr)
		var s string
		if s, err = u.readLine(); err != nil {
			return false, err
		}
		var v string
		if v, err = strconv.Unquote(pyQuote(s)); err == nil {
			u.push(v)
		}
	case 'V': // UNICODE (raw-unicode-escape, text)
		var s string
		if s, err = u.readLine(); err == nil {
			u.push(rawUnicodeEscape(s))
		}
	case ')':
		u.push(tuple{})
	case 't':
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(tuple(items))
		}
	case 0x85, 0x86, 0x87: // TUPLE1..3
		n := int(op - 0x84)
		if len(u.stack) < n {
			return false, errors.New("stack underflow")
		}
		t := append(tuple(nil), u.stack[len(u.stack)-n:]...)
		u.stack = u.stack[:len(u.stack)-n]
		u.push(t)
	case ']':
		u.push(&list{})
	case 'l':
		var items []any
		if items, err = u.popMark(); err == nil {
			u.push(&list{items: items})
		}
	case 'a', 'e': // APPEND, APPENDS
		var items []any
		if op == 'a' {
			var v any
			if v, err = u.pop(); err != nil {
				return false, err
			}
			items = []any{v}
		} else if items, err = u.popMark(); err != nil {
			return false, err
		}
		var t any
		if t, err = u.top(); err != nil {
			return false, err
		}
		switch l := t.(type) {
		case *list:
			l.items = append(l.items, items...)
		case *object:
			l.args = append(l.args, items...) // list subclass: keep the items
		default:
			return false, fmt.Errorf("append to %T", t)
		}
	case '}':
		u.push(newDict())
	case 'd':
		var items []any
		if items, err = u.popMark(); err != nil {
			return false, err
		}
		d := newDict()
		if err = setItems(d, items); err == nil {
			u.push(d)
		}
	case 's', 'u': // SETITEM, SETITEMS
		var items []any
		if op == 's' {
			if len(u.stack) < 2 {
				return false, errors.New("stack underflow")
			}
			items = append([]any(nil), u.stack[len(u.stack)-2:]...)
			u.stack = u.stack[:len(u.stack)-2]
		} else if items, err = u.popMark(); err != nil {
			return false, err
		}
		var t any
		if t, err = u.top(); err != nil {
			return false, err
		}
		d, ok := t.(*dict)
		if !ok {
			return false, fmt.Errorf("setitem on %T", t)
		}
		err = setItems(d, items)
	case 'c': // GLOBAL
		var mod, name string
		if mod, err = u.readLine(); err != nil {
			return false, err
		}
		if name, err = u.readLine(); err != nil {
			return false, err
		}
		u.push(global{canonModule(mod), name})
	case 0x93: // STACK_GLOBAL
		var n, m any
		if n, err = u.pop(); err != nil {
			return false, err
		}
		if m, err = u.pop(); err != nil {
			return false, err
		}
		ms, ok1 := m.(string)
		ns, ok2 := n.(string)
		if !ok1 || !ok2 {
			return false, errors.New("STACK_GLOBAL needs two strings")
		}
		u.push(global{canonModule(ms), ns})
	case 'R', 0x81: // REDUCE, NEWOBJ
		var args, fn any
		if args, err = u.pop(); err != nil {
			return false, err
		}
		if fn, err = u.pop(); err != nil {
			return false, err
		}
		t, ok := args.(tuple)
		if !ok {
			return false, fmt.Errorf("arguments are %T, not a tuple", args)
		}
		g, ok := fn.(global)
		if !ok {
			return false, fmt.Errorf("cannot call %T", fn)
		}
		var v any
		if op == 0x81 {
			v = &object{class: g, args: t}
		} else if v, err = u.reduce(g, t); err != nil {
			return false, err
		}
		u.push(v)
	case 'b': // BUILD
		var state, t any
		if state, err = u.pop(); err != nil {
			return false, err
		}
		if t, err = u.top(); err != nil {
			return false, err
		}
		if o, ok := t.(*object); ok {
			o.state = state
		}
		// dicts (a state dict's _metadata) and tensors: nothing to keep.
	case 'Q': // BINPERSID
		var pid, v any
		if pid, err = u.pop(); err != nil {
			return false, err
		}
		if v, err = u.persid(pid); err == nil {
			u.push(v)
		}
	case 'P': // PERSID (text id)
		var s string
		if s, err = u.readLine(); err != nil {
			return false, err
		}
		var v any
		if v, err = u.persid(s); err == nil {
			u.push(v)
		}
	case 'q', 'r', 'p', 0x94: // BINPUT, LONG_BINPUT, PUT, MEMOIZE
		var idx int
		switch op {
		case 'q':
			var b []byte
			if b, err = u.read(1); err != nil {
				return false, err
			}
			idx = int(b[0])
		case 'r':
			var b []byte
			if b, err = u.read(4); err != nil {
				return false, err
			}
			idx = int(le.Uint32(b))
		case 'p':
			var s string
			if s, err = u.readLine(); err != nil {
				return false, err
			}
			if idx, err = strconv.Atoi(s); err != nil {
				return false, err
			}
		default:
			idx = len(u.memo)
		}
		var v any
		if v, err = u.top(); err == nil {
			u.memo[idx] = v
		}
	case 'h', 'j', 'g': // BINGET, LONG_BINGET, GET
		var idx int
		switch op {
		case 'h':
			var b []byte
			if b, err = u.read(1); err != nil {
				return false, err
			}
			idx = int(b[0])
		case 'j':
			var b []byte
			if b, err = u.read(4); err != nil {
				return false, err
			}
			idx = int(le.Uint32(b))
		default:
			var s string
			if s, err = u.readLine(); err != nil {
				return false, err
			}
			if idx, err = strconv.Atoi(s); err != nil {
				return false, err
			}
		}
		v, ok := u.memo[idx]
		if !ok {
			return false, fmt.Errorf("memo entry %d was never stored", idx)
		}
		u.push(v)
	default:
		return false, errors.New("unsupported opcode")
	}
	return false, err
}

// readSized reads a length-prefixed string or bytes payload.
func (u *unpickler) readSized(op byte) ([]byte, error) {
	var n uint64
	switch op {
	case 'U', 'C', 0x8c: // 1-byte length
		b, err := u.read(1)
		if err != nil {
			return nil, err
		}
		n = uint64(b[0])
	case 'X', 'T', 'B': // 4-byte length
		b, err := u.read(4)
		if err != nil {
			return nil, err
		}
		n = uint64(binary.LittleEndian.Uint32(b))
	default: // 8-byte length
		b, err := u.read(8)
		if err != nil {
			return nil, err
		}
		n = binary.LittleEndian.Uint64(b)
	}
	if n > uint64(len(u.data)) {
		return nil, errShort
	}
	return u.read(int(n))
}

func setItems(d *dict, items []any) error {
	if len(items)%2 != 0 {
		return errors.New("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// decodeLong decodes pickle's little-endian two's-complement integers.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(v)
}

func normInt(v *big.Int) any {
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// pyQuote turns a Python 2 repr('...') into a Go-unquotable "...".
func pyQuote(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		inner := strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`)
		return `"` + strings.ReplaceAll(inner, `"`, `\"`) + `"`
	}
	return s
}

// rawUnicodeEscape decodes Python's raw-unicode-escape (\uXXXX, \UXXXXXXXX).
func rawUnicodeEscape(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32); err == nil {
					sb.WriteRune(rune(v))
					i += 1 + n
					continue
				}
			}
		}
		sb.WriteRune(rune(s[i]))
	}
	return sb.String()
}

// canonModule maps Python 2 module names to Python 3 ones.
func canonModule(m string) string {
	switch m {
	case "__builtin__":
		return "builtins"
	case "copy_reg":
		return "copyreg"
	}
	return m
}
