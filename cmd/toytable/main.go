// Command toytable summarises 2-D runs (their summary.json files) as a
// markdown table: MMD² mean ± std over seeds, vanilla vs mollified, next to
// the paper's numbers.
//
//	go run ./cmd/toytable runs/toy/*
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
)

type summary struct {
	Dataset   string   `json:"dataset"`
	Seed      uint64   `json:"seed"`
	Mollified bool     `json:"mollified"`
	Steps     int      `json:"steps"`
	MMD2Paper float64  `json:"mmd2_paper_kernel"`
	MMD2Unit  float64  `json:"mmd2_unit_kernel"`
	TestNLL   float64  `json:"test_nll_nats"`
	TrueNLL   *float64 `json:"true_test_nll_nats"`
	ScoreCos  *float64 `json:"score_cosine_grid"`
}

// The paper's Fig. 4 and Fig. 6 values (MMD², units not stated).
var paper = map[string][2]string{"mog": {"15.5", "2.5"}, "vonmises": {"383.44", "6.13"}}

func meanStd(x []float64) (float64, float64) {
	var m, v float64
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	if len(x) > 1 {
		v /= float64(len(x) - 1)
	}
	return m, math.Sqrt(v)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: toytable RUN_DIR...")
		os.Exit(2)
	}
	type key struct {
		ds   string
		moll bool
	}
	groups := map[key][]summary{}
	for _, dir := range os.Args[1:] {
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "toytable: %s has no summary.json (unfinished run?): skipped\n", dir)
			continue
		}
		var s summary
		if err := json.Unmarshal(b, &s); err != nil {
			fmt.Fprintf(os.Stderr, "toytable: %s: %v\n", dir, err)
			os.Exit(1)
		}
		groups[key{s.Dataset, s.Mollified}] = append(groups[key{s.Dataset, s.Mollified}], s)
	}
	var keys []key
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ds != keys[j].ds {
			return keys[i].ds < keys[j].ds
		}
		return !keys[i].moll && keys[j].moll
	})
	fmt.Println("| data | training | seeds | steps | MMD² ×1e5, paper kernel (l=1, σ²=1e-4) | MMD² ×1e3, unit kernel (l=1, σ²=1) | test NLL (nats) | true-density test NLL | score direction (mean cosine to the true score on a grid) | paper's MMD² |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		g := groups[k]
		var p, u, n, tn, sm []float64
		for _, s := range g {
			p = append(p, s.MMD2Paper*1e5)
			u = append(u, s.MMD2Unit*1e3)
			n = append(n, s.TestNLL)
			if s.TrueNLL != nil && s.ScoreCos != nil {
				tn = append(tn, *s.TrueNLL)
				sm = append(sm, *s.ScoreCos)
			}
		}
		truth, score := "–", "–"
		if len(tn) == len(g) {
			m, _ := meanStd(tn)
			truth = fmt.Sprintf("%.4f", m)
			sMean, sStd := meanStd(sm)
			score = fmt.Sprintf("%.3f ± %.3f", sMean, sStd)
		}
		pm, ps := meanStd(p)
		um, us := meanStd(u)
		nm, ns := meanStd(n)
		label, ref := "vanilla", paper[k.ds][0]
		if k.moll {
			label, ref = "Gaussian mollification", paper[k.ds][1]
		}
		fmt.Printf("| %s | %s | %d | %d | %.3f ± %.3f | %.3f ± %.3f | %.4f ± %.4f | %s | %s | %s |\n", k.ds, label, len(g), g[0].Steps, pm, ps, um, us, nm, ns, truth, score, ref)
	}
}
