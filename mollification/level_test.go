package mollification

import (
	"bytes"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// MollifyLevel with the level written by SetLevel gives Mollify's batch to
// the bit, from the same generator state, at every step of the phase: a
// captured step that reads σ from a tensor trains as the eager one does.
func TestMollifyLevelMatchesMollify(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	c := config.Default()
	c.Run.Iterations, c.Mollification.Fraction = 40, 0.5
	m, err := FromConfig(&c, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	g := m.(Leveled)
	lvl, err := g.NewLevel(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{64, 2}, gotch.Float, gotch.CPU)
	for _, step := range []int{0, 1, 7, 13, 19} {
		info, err := g.SetLevel(lvl, step)
		if err != nil || !info.Active || info != g.At(step) {
			t.Fatalf("step %d: SetLevel %+v, %v", step, info, err)
		}
		ts.ManualSeed(uint64(step))
		want, _, err := g.Mollify(x, step)
		if err != nil {
			t.Fatal(err)
		}
		ts.ManualSeed(uint64(step))
		got, err := g.MollifyLevel(x, lvl)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := want.Bytes()
		b, _ := got.Bytes()
		if !bytes.Equal(a, b) {
			t.Errorf("step %d (σ²=%.4f): MollifyLevel differs from Mollify", step, info.Sigma2)
		}
	}
	if info, err := g.SetLevel(lvl, 25); err != nil || info.Active {
		t.Errorf("a clean step: %+v, %v", info, err)
	}
}
