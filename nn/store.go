package nn

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Store owns a model's parameters and buffers. Names are dotted paths, as
// in a PyTorch state dict ("couplings.0.net.1.weight").
type Store struct {
	Device  gotch.Device
	names   []string
	tensors map[string]*ts.Tensor
	trained map[string]bool
	hints   []LoadHint
}

// NewStore returns an empty store for device.
func NewStore(device gotch.Device) *Store {
	return &Store{Device: device, tensors: map[string]*ts.Tensor{}, trained: map[string]bool{}}
}

// Root is the store's top-level path.
func (s *Store) Root() Path { return Path{store: s} }

// Path is a name prefix inside a Store.
type Path struct {
	store  *Store
	prefix string
}

// Sub returns the path prefix.name.
func (p Path) Sub(name string) Path {
	if p.prefix != "" {
		name = p.prefix + "." + name
	}
	return Path{store: p.store, prefix: name}
}

// Subf is Sub with a formatted name, e.g. Subf("%d", i).
func (p Path) Subf(format string, args ...any) Path { return p.Sub(fmt.Sprintf(format, args...)) }

// Store returns the store the path belongs to.
func (p Path) Store() *Store { return p.store }

// Device is the store's device.
func (p Path) Device() gotch.Device { return p.store.Device }

func (p Path) full(name string) string {
	if p.prefix == "" {
		return name
	}
	return p.prefix + "." + name
}

// Param registers t as a trainable parameter: the store takes ownership,
// moves it to the store's device and turns on requires_grad. The returned
// tensor is the one the store holds.
func (p Path) Param(name string, t *ts.Tensor) (*ts.Tensor, error) {
	return p.add(name, t, true)
}

// Buffer registers t as a non-trainable tensor saved with the weights
// (running statistics, fixed permutations, flags).
func (p Path) Buffer(name string, t *ts.Tensor) (*ts.Tensor, error) {
	return p.add(name, t, false)
}

func (p Path) add(name string, t *ts.Tensor, trained bool) (*ts.Tensor, error) {
	s := p.store
	full := p.full(name)
	if _, dup := s.tensors[full]; dup {
		return nil, fmt.Errorf("nn: parameter %q registered twice", full)
	}
	out, err := ownTensor(t, s.Device, trained)
	if err != nil {
		return nil, fmt.Errorf("nn: registering %q: %w", full, err)
	}
	s.names = append(s.names, full)
	s.tensors[full] = out
	s.trained[full] = trained
	return out, nil
}

// ownTensor detaches t from any scope as a leaf on device.
func ownTensor(t *ts.Tensor, device gotch.Device, requiresGrad bool) (out *ts.Tensor, err error) {
	defer Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	// A copy, so the caller cannot change a parameter through t.
	out = t.MustTo(device, false).MustDetachCopy(false)
	if requiresGrad {
		out.MustRequiresGrad_(true)
	}
	sc.Detach(out)
	return out, nil
}

// Parameters returns the trainable tensors in registration order.
func (s *Store) Parameters() []*ts.Tensor {
	var out []*ts.Tensor
	for _, n := range s.names {
		if s.trained[n] {
			out = append(out, s.tensors[n])
		}
	}
	return out
}

// Named returns every tensor (parameters and buffers) by name.
func (s *Store) Named() map[string]*ts.Tensor {
	out := make(map[string]*ts.Tensor, len(s.tensors))
	for k, v := range s.tensors {
		out[k] = v
	}
	return out
}

// Names returns the registered names, sorted.
func (s *Store) Names() []string {
	out := append([]string(nil), s.names...)
	sort.Strings(out)
	return out
}

// NumParams counts trainable scalars.
func (s *Store) NumParams() int64 {
	var n int64
	for _, name := range s.names {
		if s.trained[name] {
			n += numel(s.tensors[name].MustSize())
		}
	}
	return n
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Load copies values into the store's tensors in place. Every stored name
// must be present with the same shape; extra names are an error too, so a
// checkpoint of another model is caught. Nothing is copied unless all
// names and shapes match; the error lists the missing and unexpected
// names (or the first mismatched shape), then what the hints add.
func (s *Store) Load(values map[string]*ts.Tensor) (err error) {
	defer Recover(&err)
	var missing, extra, reshaped []string
	var shapeErr error
	for _, n := range s.names {
		v, ok := values[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		if a, b := s.tensors[n].MustSize(), v.MustSize(); !slices.Equal(a, b) {
			reshaped = append(reshaped, n)
			if shapeErr == nil {
				shapeErr = fmt.Errorf("nn: %q has shape %v in the model but %v in the weights", n, a, b)
			}
		}
	}
	for n := range values {
		if _, ok := s.tensors[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(missing) > 0 || len(extra) > 0 || shapeErr != nil {
		sort.Strings(missing)
		sort.Strings(extra)
		err = shapeErr
		if len(missing) > 0 || len(extra) > 0 {
			err = fmt.Errorf("nn: weights do not match the model: missing %s; unexpected %s", list(missing), list(extra))
		} else if len(reshaped) > 1 {
			err = fmt.Errorf("%w (and %d more of another shape)", err, len(reshaped)-1)
		}
		for _, h := range s.hints {
			if msg := h(missing, extra, reshaped); msg != "" {
				err = fmt.Errorf("%w; %s", err, msg)
			}
		}
		return err
	}
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		for _, n := range s.names {
			s.tensors[n].Copy_(values[n].MustTo(s.Device, false))
		}
	})
	return nil
}

// A LoadHint explains in one clause why weights may not fit a model (for
// instance the setting they were written with), given the names Load
// found missing from the weights, unexpected in them, or of another
// shape; it returns "" when it has nothing to add.
type LoadHint func(missing, unexpected, reshaped []string) string

// AddLoadHint registers a hint that Load appends to its mismatch errors.
// Models whose settings change their parameter names register one.
func (s *Store) AddLoadHint(h LoadHint) { s.hints = append(s.hints, h) }

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	if len(xs) > 6 {
		return strings.Join(xs[:6], ", ") + fmt.Sprintf(" and %d more", len(xs)-6)
	}
	return strings.Join(xs, ", ")
}

// Close frees every tensor of the store.
func (s *Store) Close() {
	for _, t := range s.tensors {
		t.MustDrop()
	}
	s.tensors = map[string]*ts.Tensor{}
	s.names = nil
}

// BufferSnapshot holds copies of a store's buffers (batch-norm running
// statistics, ActNorm's flag, ...) so that a step that is thrown away can
// put them back. The copies are allocated once and refreshed in place, so
// taking a snapshot every step allocates nothing.
type BufferSnapshot struct {
	live, saved []*ts.Tensor
}

// NewBufferSnapshot allocates a snapshot of every buffer of s; with no
// buffers it is empty and costs nothing.
func (s *Store) NewBufferSnapshot() (b *BufferSnapshot, err error) {
	defer Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	b = &BufferSnapshot{}
	for _, n := range s.names {
		if s.trained[n] {
			continue
		}
		t := s.tensors[n]
		c := t.MustDetachCopy(false)
		sc.Detach(c)
		b.live = append(b.live, t)
		b.saved = append(b.saved, c)
	}
	return b, nil
}

// Save copies the buffers' current values into the snapshot.
func (b *BufferSnapshot) Save() (err error) {
	defer Recover(&err)
	ts.NoGrad(func() {
		for i, t := range b.live {
			b.saved[i].Copy_(t)
		}
	})
	return nil
}

// Restore copies the snapshot back into the buffers.
func (b *BufferSnapshot) Restore() (err error) {
	defer Recover(&err)
	ts.NoGrad(func() {
		for i, t := range b.live {
			t.Copy_(b.saved[i])
		}
	})
	return nil
}

// Len is the number of buffers held.
func (b *BufferSnapshot) Len() int { return len(b.live) }

// Close frees the copies.
func (b *BufferSnapshot) Close() {
	for _, t := range b.saved {
		t.MustDrop()
	}
	b.live, b.saved = nil, nil
}
