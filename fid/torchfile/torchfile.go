package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// DType is a tensor element type.
type DType int

const (
	Float32 DType = iota
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Int16
	Int8
	Uint8
	Bool
)

var dtypeInfo = []struct {
	name, storage string
	size          int
}{
	Float32:  {"float32", "FloatStorage", 4},
	Float64:  {"float64", "DoubleStorage", 8},
	Float16:  {"float16", "HalfStorage", 2},
	BFloat16: {"bfloat16", "BFloat16Storage", 2},
	Int64:    {"int64", "LongStorage", 8},
	Int32:    {"int32", "IntStorage", 4},
	Int16:    {"int16", "ShortStorage", 2},
	Int8:     {"int8", "CharStorage", 1},
	Uint8:    {"uint8", "ByteStorage", 1},
	Bool:     {"bool", "BoolStorage", 1},
}

func (t DType) String() string {
	if t < 0 || int(t) >= len(dtypeInfo) {
		return "DType(" + strconv.Itoa(int(t)) + ")"
	}
	return dtypeInfo[t].name
}

// Size is the element size in bytes.
func (t DType) Size() int { return dtypeInfo[t].size }

// Tensor is a dense tensor copied out of its storage.
type Tensor struct {
	Shape []int64
	DType DType
	Raw   []byte // Numel()·DType.Size() little-endian bytes, C order
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// Float32 returns the elements of a floating-point tensor as float32
// (float64 values are rounded).
func (t *Tensor) Float32() ([]float32, error) {
	n := int(t.Numel())
	out := make([]float32, n)
	le := binary.LittleEndian
	switch t.DType {
	case Float32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(t.Raw[4*i:]))
		}
	case Float64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(t.Raw[8*i:])))
		}
	case Float16:
		for i := range out {
			out[i] = halfToFloat(le.Uint16(t.Raw[2*i:]))
		}
	case BFloat16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(t.Raw[2*i:])) << 16)
		}
	default:
		return nil, fmt.Errorf("torchfile: Float32 of a %v tensor; use Int64", t.DType)
	}
	return out, nil
}

// Int64 returns the elements of an integer or bool tensor.
func (t *Tensor) Int64() ([]int64, error) {
	n := int(t.Numel())
	out := make([]int64, n)
	le := binary.LittleEndian
	for i := range out {
		switch t.DType {
		case Int64:
			out[i] = int64(le.Uint64(t.Raw[8*i:]))
		case Int32:
			out[i] = int64(int32(le.Uint32(t.Raw[4*i:])))
		case Int16:
			out[i] = int64(int16(le.Uint16(t.Raw[2*i:])))
		case Int8:
			out[i] = int64(int8(t.Raw[i]))
		case Uint8, Bool:
			out[i] = int64(t.Raw[i])
		default:
			return nil, fmt.Errorf("torchfile: Int64 of a %v tensor; use Float32", t.DType)
		}
	}
	return out, nil
}

// halfToFloat converts IEEE binary16 bits.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	f := float32(mant) * (1.0 / (1 << 24)) // subnormal: mant·2⁻²⁴
	if sign != 0 {
		return -f
	}
	return f
}

// StateDict maps parameter names to tensors.
type StateDict map[string]*Tensor

// Names returns the names in sorted order.
func (sd StateDict) Names() []string {
	names := make([]string, 0, len(sd))
	for k := range sd {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Load reads a torch.save'd state dict from path, in either format.
func Load(path string) (StateDict, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	sd, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sd, nil
}

// Parse reads a torch.save'd state dict from its bytes.
func Parse(b []byte) (StateDict, error) {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return parseZip(b)
	case len(b) >= 2 && b[0] == 0x80:
		return parseLegacy(b)
	case len(b) > 262 && string(b[257:262]) == "ustar":
		return nil, errors.New("torchfile: this is the tar format of PyTorch < 0.4, which is not supported; re-save it with a newer PyTorch")
	}
	return nil, errors.New("torchfile: not a PyTorch file (neither a zip archive nor a pickle stream)")
}

// storage is a typed storage; legacy views share their root's bytes.
type storage struct {
	key    string
	dtype  DType
	numel  int64
	data   []byte
	root   *storage // legacy view: data is root.data[offset:offset+numel]
	offset int64    // in elements
}

func (s *storage) bytes() []byte {
	if s.root == nil {
		return s.data
	}
	es := int64(s.dtype.Size())
	rb := s.root.data
	lo, hi := s.offset*es, (s.offset+s.numel)*es
	if lo < 0 || hi > int64(len(rb)) {
		return nil
	}
	return rb[lo:hi]
}

// tensorRef is a tensor before its storage's bytes are known.
type tensorRef struct {
	storage      *storage
	offset       int64
	size, stride []int64
}

// storageType is a torch.*Storage class, as a storage's persistent id
// names it.
type storageType struct{ dtype DType }

// class is a Python class or function the loader does not know: calling or
// instantiating it gives an opaque object, which is never a tensor.
type class struct{ module, name string }

func (c *class) String() string                 { return c.module + "." + c.name }
func (c *class) Call(args ...any) (any, error)  { return &object{class: c, args: args}, nil }
func (c *class) PyNew(args ...any) (any, error) { return &object{class: c, args: args}, nil }

type object struct {
	class *class
	args  []any
}

// PySetState drops the state: objects only get a name in errors.
func (o *object) PySetState(any) error { return nil }

// function is a torch function the loader implements.
type function func(args ...any) (any, error)

func (f function) Call(args ...any) (any, error) { return f(args...) }

// findClass resolves the globals a pickle names, for gopickle (which knows
// dict, list, collections.OrderedDict and copyreg itself).
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return function(rebuildTensor), nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		// (data, requires_grad, backward_hooks[, state]): the data is the tensor.
		return function(func(args ...any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("_rebuild_parameter without arguments")
			}
			return args[0], nil
		}), nil
	case "torch._tensor._rebuild_from_type_v2":
		// (func, type, args, state): rebuild with func, drop the subclass.
		return function(func(args ...any) (any, error) {
			if len(args) != 4 {
				return nil, fmt.Errorf("_rebuild_from_type_v2 needs 4 arguments, got %d", len(args))
			}
			f, ok1 := args[0].(types.Callable)
			a, ok2 := args[2].(*types.Tuple)
			if !ok1 || !ok2 {
				return nil, errors.New("_rebuild_from_type_v2: malformed arguments")
			}
			return f.Call(*a...)
		}), nil
	}
	if module == "torch" {
		for i, info := range dtypeInfo {
			if info.storage == name {
				return &storageType{DType(i)}, nil
			}
		}
	}
	return &class{module, name}, nil
}

// rebuildTensor is torch._utils._rebuild_tensor(_v2): (storage,
// storage_offset, size, stride, ...).
func rebuildTensor(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor needs 4 or more arguments, got %d", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: first argument is %T, not a storage", args[0])
	}
	off, ok := args[1].(int)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: storage offset is %T", args[1])
	}
	size, err1 := ints(args[2])
	stride, err2 := ints(args[3])
	if err1 != nil || err2 != nil || len(size) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor: bad size %v or stride %v", args[2], args[3])
	}
	return &tensorRef{storage: st, offset: int64(off), size: size, stride: stride}, nil
}

// ints reads a tuple (or torch.Size) of ints.
func ints(v any) ([]int64, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		if o, isObj := v.(*object); isObj && o.class.String() == "torch.Size" && len(o.args) == 1 {
			return ints(o.args[0])
		}
		return nil, fmt.Errorf("%T is not a tuple", v)
	}
	out := make([]int64, len(*t))
	for i, x := range *t {
		n, ok := x.(int)
		if !ok {
			return nil, fmt.Errorf("element %d is %T", i, x)
		}
		out[i] = int64(n)
	}
	return out, nil
}

// loader holds the storages one file refers to.
type loader struct {
	storages map[string]*storage
}

// persistentLoad resolves torch.save's persistent ids: ('storage',
// storage_type, key, location, numel[, view_metadata]), and ('module',
// class, ...) for pickled modules.
func (l *loader) persistentLoad(pid any) (any, error) {
	tp, ok := pid.(*types.Tuple)
	if !ok || len(*tp) == 0 {
		return nil, fmt.Errorf("persistent id %v is not a tuple", pid)
	}
	t := *tp
	kind, _ := t[0].(string)
	switch kind {
	case "module":
		if len(t) > 1 {
			if c, ok := t[1].(*class); ok {
				return c, nil
			}
		}
		return nil, errors.New("malformed module persistent id")
	case "storage":
	default:
		return nil, fmt.Errorf("unknown persistent id kind %q", kind)
	}
	if len(t) != 5 && len(t) != 6 {
		return nil, fmt.Errorf("storage persistent id has %d fields", len(t))
	}
	st, ok := t[1].(*storageType)
	if !ok {
		return nil, fmt.Errorf("unsupported storage type %v", t[1])
	}
	key, ok1 := t[2].(string)
	numel, ok2 := t[4].(int)
	if !ok1 || !ok2 || numel < 0 {
		return nil, fmt.Errorf("malformed storage persistent id %v", tp)
	}
	root := l.storages[key]
	if root == nil {
		root = &storage{key: key, dtype: st.dtype, numel: int64(numel)}
		l.storages[key] = root
	}
	if len(t) == 6 && t[5] != nil { // legacy view_metadata (view_key, offset, size)
		vm, ok := t[5].(*types.Tuple)
		if !ok || len(*vm) != 3 {
			return nil, fmt.Errorf("malformed view metadata %v", t[5])
		}
		vkey, ok1 := (*vm)[0].(string)
		off, ok2 := (*vm)[1].(int)
		vsize, ok3 := (*vm)[2].(int)
		if !ok1 || !ok2 || !ok3 || off < 0 || vsize < 0 {
			return nil, fmt.Errorf("malformed view metadata %v", vm)
		}
		if v := l.storages[vkey]; v != nil {
			return v, nil
		}
		v := &storage{key: vkey, dtype: st.dtype, numel: int64(vsize), root: root, offset: int64(off)}
		l.storages[vkey] = v
		return v, nil
	}
	return root, nil
}

// unpickle runs the next pickle of r on gopickle; objects holds
// storages (persistent ids), headers do not.
func (l *loader) unpickle(r *bytes.Reader, objects bool) (v any, err error) {
	// gopickle v0.3.0 indexes out of range on some malformed pickles (the
	// opcode 0xff, an empty LONG1): a damaged file, not a bug here.
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("unsupported opcode or corrupt pickle (gopickle: %v)", p)
		}
	}()
	u := pickle.NewUnpickler(r)
	u.FindClass = findClass
	u.PersistentLoad = func(any) (any, error) { return nil, errors.New("persistent id outside the object pickle") }
	if objects {
		u.PersistentLoad = l.persistentLoad
	}
	v, err = u.Load()
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("truncated pickle (%w)", err)
	case strings.HasPrefix(err.Error(), "unknown opcode"): // gopickle's message
		return nil, fmt.Errorf("unsupported opcode: %w", err)
	}
	return nil, err
}

// legacyMagic is torch.serialization.MAGIC_NUMBER.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

func parseLegacy(b []byte) (StateDict, error) {
	l := &loader{storages: map[string]*storage{}}
	r := bytes.NewReader(b)
	header := func(what string) (any, error) {
		v, err := l.unpickle(r, false)
		if err != nil {
			return nil, fmt.Errorf("torchfile: legacy %s: %w", what, err)
		}
		return v, nil
	}
	magic, err := header("magic number")
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("torchfile: pickle stream does not start with torch's magic number (got %v): not a torch.save file", magic)
	}
	proto, err := header("protocol version")
	if err != nil {
		return nil, err
	}
	if proto != 1001 {
		return nil, fmt.Errorf("torchfile: legacy protocol version %v, want 1001", proto)
	}
	info, err := header("sys_info")
	if err != nil {
		return nil, err
	}
	if d, ok := info.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, errors.New("torchfile: the file was written on a big-endian machine, which is not supported")
		}
	}
	obj, err := l.unpickle(r, true)
	if err != nil {
		return nil, fmt.Errorf("torchfile: legacy object: %w", err)
	}
	keysObj, err := header("storage keys")
	if err != nil {
		return nil, err
	}
	keys, ok := keysObj.(*types.List)
	if !ok {
		return nil, fmt.Errorf("torchfile: storage key list is %T", keysObj)
	}
	pos := len(b) - r.Len()
	for _, k := range *keys {
		key, _ := k.(string)
		st := l.storages[key]
		if st == nil || st.root != nil {
			return nil, fmt.Errorf("torchfile: storage %q is listed but not used by the object", key)
		}
		if pos+8 > len(b) {
			return nil, fmt.Errorf("torchfile: file truncated before storage %q", key)
		}
		n := int64(binary.LittleEndian.Uint64(b[pos:]))
		pos += 8
		if n != st.numel {
			return nil, fmt.Errorf("torchfile: storage %q has %d elements in the file, %d in the object", key, n, st.numel)
		}
		nb := n * int64(st.dtype.Size())
		if nb < 0 || int64(pos)+nb > int64(len(b)) {
			return nil, fmt.Errorf("torchfile: file truncated in storage %q (%d bytes needed, %d left)", key, nb, len(b)-pos)
		}
		st.data = b[pos : pos+int(nb)]
		pos += int(nb)
	}
	return collect(obj)
}

func parseZip(b []byte) (StateDict, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("torchfile: corrupt zip archive: %w", err)
	}
	files := map[string]*zip.File{}
	prefix := ""
	for _, f := range zr.File {
		files[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && !strings.Contains(dir, "/") {
			if prefix != "" {
				return nil, errors.New("torchfile: zip archive has several data.pkl records")
			}
			prefix = dir + "/"
		}
	}
	if prefix == "" {
		return nil, errors.New("torchfile: zip archive has no <name>/data.pkl: not a torch.save file")
	}
	if f := files[prefix+"byteorder"]; f != nil {
		bo, err := readZipFile(f, 16)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(bo)); s != "little" {
			return nil, fmt.Errorf("torchfile: byte order %q is not supported", s)
		}
	}
	pkl, err := readZipFile(files[prefix+"data.pkl"], 1<<30)
	if err != nil {
		return nil, err
	}
	l := &loader{storages: map[string]*storage{}}
	obj, err := l.unpickle(bytes.NewReader(pkl), true)
	if err != nil {
		return nil, fmt.Errorf("torchfile: data.pkl: %w", err)
	}
	for key, st := range l.storages {
		f := files[prefix+"data/"+key]
		if f == nil {
			return nil, fmt.Errorf("torchfile: storage %q has no record %sdata/%s", key, prefix, key)
		}
		nb := st.numel * int64(st.dtype.Size())
		if int64(f.UncompressedSize64) < nb {
			return nil, fmt.Errorf("torchfile: record %s holds %d bytes, storage %q needs %d", f.Name, f.UncompressedSize64, key, nb)
		}
		if st.data, err = readZipFile(f, nb); err != nil {
			return nil, err
		}
		st.data = st.data[:nb]
	}
	return collect(obj)
}

func readZipFile(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("torchfile: record %s: %w", f.Name, err)
	}
	defer rc.Close()
	if int64(f.UncompressedSize64) > limit {
		// Read only what is needed; the CRC is then not checked.
		b := make([]byte, limit)
		if _, err := io.ReadFull(rc, b); err != nil {
			return nil, fmt.Errorf("torchfile: record %s: %w", f.Name, err)
		}
		return b, nil
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("torchfile: record %s is corrupt: %w", f.Name, err)
	}
	return b, nil
}

// collect flattens the unpickled object into a state dict.
func collect(obj any) (StateDict, error) {
	if _, ok := items(obj); !ok {
		switch o := obj.(type) {
		case *object:
			return nil, fmt.Errorf("torchfile: the file holds a pickled %v object, not a state dict; load it in Python and torch.save(model.state_dict(), path)", o.class)
		case *tensorRef:
			return nil, errors.New("torchfile: the file holds a single tensor, not a state dict")
		}
		return nil, fmt.Errorf("torchfile: the file holds a %T, not a state dict", obj)
	}
	sd := StateDict{}
	var walk func(d any, prefix string) error
	walk = func(d any, prefix string) error {
		kv, _ := items(d)
		for _, e := range kv {
			var name string
			switch k := e.Key.(type) {
			case string:
				name = k
			case int:
				name = strconv.Itoa(k)
			default:
				continue
			}
			name = prefix + name
			if v, ok := e.Value.(*tensorRef); ok {
				t, err := v.materialize()
				if err != nil {
					return fmt.Errorf("torchfile: tensor %q: %w", name, err)
				}
				sd[name] = t
			} else if _, ok := items(e.Value); ok {
				if err := walk(e.Value, name+"."); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(obj, ""); err != nil {
		return nil, err
	}
	if len(sd) == 0 {
		return nil, errors.New("torchfile: the file's dict holds no tensors")
	}
	return sd, nil
}

// items returns the entries of a dict or OrderedDict in order.
func items(v any) ([]types.DictEntry, bool) {
	switch d := v.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		out := make([]types.DictEntry, 0, d.Len())
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			out = append(out, types.DictEntry{Key: e.Key, Value: e.Value})
		}
		return out, true
	}
	return nil, false
}

// materialize copies the viewed elements out in C order.
func (r *tensorRef) materialize() (*Tensor, error) {
	st := r.storage
	data := st.bytes()
	if int64(len(data)) != st.numel*int64(st.dtype.Size()) {
		return nil, fmt.Errorf("storage %q has no data (%d of %d bytes)", st.key, len(data), st.numel*int64(st.dtype.Size()))
	}
	es := int64(st.dtype.Size())
	numel := int64(1)
	maxIdx := r.offset
	for i, s := range r.size {
		if s < 0 || r.stride[i] < 0 {
			return nil, fmt.Errorf("negative size or stride (%v, %v)", r.size, r.stride)
		}
		if s > 0 && numel > math.MaxInt64/s/es {
			return nil, fmt.Errorf("size %v is too large", r.size)
		}
		numel *= s
		if s > 0 {
			maxIdx += (s - 1) * r.stride[i]
		}
	}
	t := &Tensor{Shape: append([]int64{}, r.size...), DType: st.dtype}
	if numel == 0 {
		t.Raw = []byte{}
		return t, nil
	}
	if r.offset < 0 || maxIdx >= st.numel {
		return nil, fmt.Errorf("view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage", r.offset, r.size, r.stride, maxIdx, st.numel)
	}
	if numel > 64*st.numel+1<<20 {
		return nil, fmt.Errorf("a %d-element view of a %d-element storage is implausible (broadcast?)", numel, st.numel)
	}
	t.Raw = make([]byte, numel*es)
	// Contiguous in C order: one copy.
	contiguous, want := true, int64(1)
	for i := len(r.size) - 1; i >= 0; i-- {
		if r.size[i] != 1 && r.stride[i] != want {
			contiguous = false
		}
		want *= r.size[i]
	}
	if contiguous {
		copy(t.Raw, data[r.offset*es:(r.offset+numel)*es])
		return t, nil
	}
	idx := make([]int64, len(r.size))
	src := r.offset
	for n := int64(0); n < numel; n++ {
		copy(t.Raw[n*es:(n+1)*es], data[src*es:(src+1)*es])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			src += r.stride[d]
			if idx[d] < r.size[d] {
				break
			}
			src -= r.stride[d] * idx[d]
			idx[d] = 0
		}
	}
	return t, nil
}
