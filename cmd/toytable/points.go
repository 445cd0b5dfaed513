package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// pointNLL is a flow's per-point NLL with its two parts: ½‖z‖² (plus the
// constant log 2π) and −log|det ∂z/∂x|.
type pointNLL struct {
	nll, halfZ2, logDet float64
	x, y                float32
}

// flowNLL evaluates the 2-D flow on points (x,y pairs).
func flowNLL(f *flows.RealNVP2D, pts []float32) (out []pointNLL, err error) {
	sc := ts.NewScope()
	defer sc.Close()
	defer nn.Recover(&err)
	x, err := data.Tensor(pts, gotch.CPU)
	if err != nil {
		return nil, err
	}
	ts.NoGrad(func() {
		z, logdet := f.Forward(x)
		nll := flows.StdNormalLogProb(z).MustAdd(logdet, false).MustNeg(true).MustTotype(gotch.Double, true).Float64Values()
		z2 := z.MustTotype(gotch.Double, false).MustSquare(true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true).Float64Values()
		ld := logdet.MustTotype(gotch.Double, false).Float64Values()
		out = make([]pointNLL, len(nll))
		for i := range out {
			out[i] = pointNLL{nll: nll[i], halfZ2: z2[i] / 2, logDet: ld[i], x: pts[2*i], y: pts[2*i+1]}
		}
	})
	return out, err
}

// pointsTable loads each run's last checkpoint and prints its per-point
// NLL on the training and test sets: quantiles, how many points exceed
// the summary's bound, and for the 1% worst points their mean NLL, where
// they lie on the plane and their median ½‖z‖² and log-det.
func pointsTable(dirs []string, w io.Writer) error {
	nn.SetThreads(1)
	fmt.Fprintln(w, "| run | split | mean | median | 99th pct | max | points > 20 nats | worst 1%: mean NLL | worst 1%: angle θ (min, max) | worst 1%: median ½‖z‖² | worst 1%: median log-det |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, dir := range dirs {
		if err := runPoints(dir, w); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return nil
}

func runPoints(dir string, w io.Writer) error {
	c, err := config.Load(filepath.Join(dir, config.ResolvedName), nil)
	if err != nil {
		return err
	}
	c.Run.Device = "cpu"
	store := nn.NewStore(gotch.CPU)
	defer store.Close()
	m, err := models.Build(c, store.Root())
	if err != nil {
		return err
	}
	flow, ok := m.(*models.RealNVP2D)
	if !ok {
		return fmt.Errorf("model %q is not the 2-D REAL-NVP", c.Model.Name)
	}
	cks, err := train.Checkpoints(dir)
	if err != nil {
		return err
	}
	if len(cks) == 0 {
		return fmt.Errorf("no checkpoint")
	}
	if err := train.LoadModelWeights(cks[len(cks)-1], store); err != nil {
		return err
	}
	pts, err := data.NewPoints(c.Data.Dataset, c.Data.TrainSize, c.Data.TestSize, 0)
	if err != nil {
		return err
	}
	for _, split := range []struct {
		name string
		xy   []float32
	}{{"train", pts.Train}, {"test", pts.Test}} {
		p, err := flowNLL(flow.Flow, split.xy)
		if err != nil {
			return err
		}
		sort.Slice(p, func(i, j int) bool { return less(p[i].nll, p[j].nll) })
		n := len(p)
		var sum, worstSum float64
		above := 0
		for i, q := range p {
			sum += q.nll
			if i >= n-n/100 {
				worstSum += q.nll
			}
			if !(q.nll <= 20) {
				above++
			}
		}
		worst := p[n-n/100:]
		lo, hi := math.Inf(1), math.Inf(-1)
		var z2, ld []float64
		for _, q := range worst {
			th := math.Atan2(float64(q.y), float64(q.x))
			lo, hi = math.Min(lo, th), math.Max(hi, th)
			z2, ld = append(z2, q.halfZ2), append(ld, q.logDet)
		}
		sort.Float64s(z2)
		sort.Float64s(ld)
		medLD := ld[len(ld)/2]
		if medLD == 0 {
			medLD = 0 // no "-0"
		}
		fmt.Fprintf(w, "| %s (step %s) | %s | %.3g | %.3g | %.3g | %.3g | %d of %d | %.3g | %.2f, %.2f | %.3g | %.3g |\n",
			filepath.Base(filepath.Clean(dir)), stepOf(cks[len(cks)-1]), split.name, sum/float64(n), p[n/2].nll, p[n*99/100].nll, p[n-1].nll,
			above, n, worstSum/float64(len(worst)), lo, hi, z2[len(z2)/2], medLD)
	}
	return nil
}

// less orders NLLs with NaN last.
func less(a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	return math.IsNaN(b) || a < b
}

// stepOf reads the step from a checkpoint's name (ckpt-000020000.safetensors).
func stepOf(path string) string {
	var s int
	if _, err := fmt.Sscanf(filepath.Base(path), "ckpt-%d.safetensors", &s); err != nil {
		return "?"
	}
	return fmt.Sprint(s)
}
