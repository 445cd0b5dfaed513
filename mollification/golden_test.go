package mollification

import (
	"encoding/json"
	"math"
	"os"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// golden mirrors testdata/golden.json, written by testdata/gen_golden.py.
type golden struct {
	Schedules struct {
		T     int   `json:"T"`
		Steps []int `json:"steps"`
		Cases []struct {
			Name   string             `json:"name"`
			Params map[string]float64 `json:"params"`
			Sigma2 []float64          `json:"sigma2"`
		} `json:"cases"`
	} `json:"schedules"`
	Blur []struct {
		Shape   []int64     `json:"shape"`
		X       []float64   `json:"x"`
		DCT2    []float64   `json:"dct2"`
		IDCT2   []float64   `json:"idct2"`
		Times   []float64   `json:"times"`
		Blurred [][]float64 `json:"blurred"`
	} `json:"blur"`
	Gaussian []struct {
		Seed   uint64    `json:"seed"`
		Sigma2 float64   `json:"sigma2"`
		Shape  []int64   `json:"shape"`
		X      []float64 `json:"x"`
		Y      []float64 `json:"y"`
	} `json:"gaussian"`
}

var (
	goldenOnce sync.Once
	goldenData golden
	goldenErr  error
)

func loadGolden(t testing.TB) *golden {
	t.Helper()
	goldenOnce.Do(func() {
		b, err := os.ReadFile("testdata/golden.json")
		if err != nil {
			goldenErr = err
			return
		}
		goldenErr = json.Unmarshal(b, &goldenData)
	})
	if goldenErr != nil {
		t.Fatalf("reading golden values (regenerate with /usr/bin/python3 mollification/testdata/gen_golden.py): %v", goldenErr)
	}
	return &goldenData
}

// tensorOf builds a tensor of shape and dtype from row-major values, in the
// caller's scope.
func tensorOf(vals []float64, shape []int64, dt gotch.DType) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView(shape, false).MustTotype(dt, false)
}

// maxAbsDiff compares a tensor's values with want.
func maxAbsDiff(t testing.TB, x *ts.Tensor, want []float64) float64 {
	t.Helper()
	got := x.Float64Values()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	m := 0.0
	for i := range got {
		m = math.Max(m, math.Abs(got[i]-want[i]))
	}
	return m
}

// scoped runs fn in a fresh scope and checks that it leaves no tensor
// behind once the scope is closed.
func scoped(t testing.TB, fn func()) {
	t.Helper()
	before := ts.LiveTensors()
	func() {
		s := ts.NewScope()
		defer s.Close()
		fn()
	}()
	// Finalizers of earlier garbage may lower the count meanwhile; a tensor
	// left behind raises it.
	if after := ts.LiveTensors(); after > before {
		t.Errorf("live tensors went from %d to %d: a tensor escaped the scope", before, after)
	}
}
