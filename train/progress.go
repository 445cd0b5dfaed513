package train

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mollify/mollify/mollification"
	"github.com/schollz/progressbar/v3"
)

// isTTY reports whether w is a terminal (not a CI log or a file).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ProgressHook shows step, loss, the mollification state, it/s and ETA: a
// progress bar on a terminal, else a plain line every `every` steps.
func ProgressHook(every int) Hook {
	var bar *progressbar.ProgressBar
	var start time.Time
	var startStep int
	return Hook{Name: "progress", Priority: PriorityLog, Every: 1, AtEnd: true, Fn: func(t *Trainer, s *StepStats) error {
		total := t.Options.Iterations
		if start.IsZero() {
			start, startStep = time.Now(), t.step-1
			if isTTY(t.Log) {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(t.Log),
					progressbar.OptionShowIts(),
					progressbar.OptionShowCount(),
					progressbar.OptionSetItsString("it"),
					progressbar.OptionSetWidth(24),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(t.Log) }))
				bar.Set(startStep)
			}
		}
		label := fmt.Sprintf("loss %8.4f %s", s.Loss, s.Moll)
		if bar != nil {
			bar.Describe(label)
			return bar.Set(t.step)
		}
		if t.step%every != 0 && t.step != total {
			return nil
		}
		el := time.Since(start).Seconds()
		rate := float64(t.step-startStep) / max(el, 1e-9)
		eta := time.Duration(float64(total-t.step) / max(rate, 1e-9) * float64(time.Second)).Round(time.Second)
		_, err := fmt.Fprintf(t.Log, "step %d/%d %s  %.0f it/s  ETA %s  skipped %d\n", t.step, total, label, rate, eta, t.skipped)
		return err
	}}
}

// MetricsHook appends a "train" record every `every` steps: loss, terms,
// σ² or blur time, learning rate, step time and data wait.
func MetricsHook(every int) Hook {
	return Hook{Name: "metrics", Priority: PriorityLog, Every: every, AtEnd: true, Fn: func(t *Trainer, s *StepStats) error {
		v := map[string]any{
			"loss": s.Loss, "lr": s.LR, "skipped_total": t.skipped,
			"mollified": s.Moll.Active, "sigma2": s.Moll.Sigma2,
			"step_ms": float64(s.StepTime.Microseconds()) / 1e3, "data_wait_ms": float64(s.DataWait.Microseconds()) / 1e3,
		}
		if s.Moll.Kind == mollification.KindBlur {
			v["blur_sigma"], v["blur_time"] = s.Moll.BlurSigma, s.Moll.BlurTime
		}
		if finite(s.GradNorm) {
			v["grad_norm"] = s.GradNorm
		}
		for k, x := range s.Terms {
			v[k] = x
		}
		return t.Metric("train", v)
	}}
}
