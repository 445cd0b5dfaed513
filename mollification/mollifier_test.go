package mollification

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/config"
)

func TestFromConfig(t *testing.T) {
	toy := config.Default() // realnvp2d on mog, Gaussian sigmoid, half of 20000 steps
	images := config.Default()
	images.Data = config.Data{Dataset: config.DatasetCIFAR10, ImageSize: 32, Channels: 3, BatchSize: 64}
	images.Mollification.Kind = config.KindBlur
	images.Mollification.Iterations = 30000
	images.Run.Iterations = 50000

	m, err := FromConfig(&toy, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := m.(*Gaussian)
	if !ok || g.Steps() != 10000 || g.Schedule() != Schedule(DefaultSigmoid()) {
		t.Errorf("toy config gave %T %+v", m, m)
	}

	vanilla := toy
	vanilla.Mollification.Enabled = false
	if m, err := FromConfig(&vanilla, gotch.CPU); err != nil || m != Mollifier(None{}) {
		t.Errorf("disabled: %T, %v", m, err)
	}

	m, err = FromConfig(&images, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, ok := m.(*Blur)
	if !ok || b.Steps() != 30000 || b.Options().SigmaMax != 16 {
		t.Errorf("blur config gave %T %+v", m, m)
	}

	blur2D := toy
	blur2D.Mollification.Kind = config.KindBlur
	if _, err := FromConfig(&blur2D, gotch.CPU); err == nil || !strings.Contains(err.Error(), `needs image data, but data.dataset "mog"`) {
		t.Errorf("blur on 2-D data: %v", err)
	}

	bad := toy
	bad.Mollification.Schedule = "sigmod"
	if _, err := FromConfig(&bad, gotch.CPU); err == nil || !strings.Contains(err.Error(), `unknown schedule "sigmod"`) {
		t.Errorf("unknown schedule: %v", err)
	}
}

func TestNoneIsClean(t *testing.T) {
	scoped(t, func() {
		x := ts.MustOfSlice([]float32{1, -2, 3})
		y, info, err := None{}.Mollify(x, 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.Active || info.Kind != KindNone || info.String() != "clean" || !math.IsInf(info.LogSNR(), 1) {
			t.Errorf("info %+v", info)
		}
		if e := maxAbsDiff(t, y, []float64{1, -2, 3}); e != 0 || y == x {
			t.Errorf("None returned %v (same handle: %v)", y.Float64Values(), y == x)
		}
	})
}

func TestInfoString(t *testing.T) {
	g, _ := NewGaussian(DefaultSigmoid(), 100)
	if s := g.At(50).String(); s != "σ²=0.188" {
		t.Errorf("String() = %q", s)
	}
	if l := g.At(50).LogSNR(); math.Abs(l-LogSNR(DefaultSigmoid().Sigma2(0.5))) > 0 {
		t.Errorf("LogSNR %g", l)
	}
}
