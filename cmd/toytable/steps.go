package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// spikeNats is the logged training loss (nats per point) that counts as a
// spike: a 2-D flow's loss is a few nats; above this a batch holds points
// the model maps far out in latent space.
const spikeNats = 1000

// stepsTable compares the trainings at every evaluation step: median
// [IQR] of the paper-kernel MMD² (×1e5) over the runs evaluated at that
// step, and the paired count of seeds where the mollified run is lower.
// Then, per training, how many runs logged a training loss above
// spikeNats, and the first such step of each.
func stepsTable(groups map[key][]summary, w io.Writer) {
	var sets []string
	seen := map[string]bool{}
	for k := range groups {
		if !seen[k.ds] {
			seen[k.ds] = true
			sets = append(sets, k.ds)
		}
	}
	sort.Strings(sets)
	at := func(s summary, step float64) (float64, bool) {
		for i, e := range s.Curve.EvalSteps {
			if e == step && i < len(s.Curve.MMD2Paper) {
				return value(s.Curve.MMD2Paper[i]), true
			}
		}
		return 0, false
	}
	fmt.Fprintln(w, "| data | step | vanilla: runs, MMD² ×1e5 (paper kernel) | mollified: runs, MMD² ×1e5 (paper kernel) | mollified lower (paired by seed) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, ds := range sets {
		van, moll := groups[key{ds, false}], groups[key{ds, true}]
		stepSet := map[float64]bool{}
		for _, g := range [][]summary{van, moll} {
			for _, s := range g {
				for _, e := range s.Curve.EvalSteps {
					stepSet[e] = true
				}
			}
		}
		var steps []float64
		for e := range stepSet {
			steps = append(steps, e)
		}
		sort.Float64s(steps)
		for _, step := range steps {
			vals := func(g []summary) (v []float64, bySeed map[uint64]float64) {
				bySeed = map[uint64]float64{}
				for _, s := range g {
					if x, ok := at(s, step); ok {
						v = append(v, x*1e5)
						bySeed[s.Seed] = x
					}
				}
				return v, bySeed
			}
			vv, vs := vals(van)
			mv, ms := vals(moll)
			lower, pairs := 0, 0
			for seed, m := range ms {
				if v, ok := vs[seed]; ok {
					pairs++
					if m < v {
						lower++
					}
				}
			}
			fmt.Fprintf(w, "| %s | %d | %d, %s | %d, %s | %d of %d |\n", ds, int(step), len(vv), medianIQR(vv), len(mv), medianIQR(mv), lower, pairs)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| data | training | runs | runs with a logged training loss > %d nats (first such step) |\n", spikeNats)
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, ds := range sets {
		for _, moll := range []bool{false, true} {
			g := groups[key{ds, moll}]
			if g == nil {
				continue
			}
			var firsts []string
			for _, s := range g {
				for i, l := range s.Curve.Loss {
					if l > spikeNats || l == nonFinite || math.IsNaN(l) {
						firsts = append(firsts, fmt.Sprintf("seed %d: %d", s.Seed, int(s.Curve.Steps[i])))
						break
					}
				}
			}
			label := "vanilla"
			if moll {
				label = "Gaussian mollification"
			}
			list := ""
			if len(firsts) > 0 {
				list = " (" + strings.Join(firsts, "; ") + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d%s |\n", ds, label, len(g), len(firsts), list)
		}
	}
}
