// Command soak runs the 2D RealNVP benchmark binary for many steps and
// checks that RSS stays flat: growth from step 10k to the end must be
// under 5%.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
)

func main() {
	bin := flag.String("bin", "", "bench/realnvp2d binary")
	steps := flag.Int("steps", 100000, "steps")
	every := flag.Int("every", 10000, "RSS sample interval")
	flag.Parse()
	out, err := exec.Command(*bin, "-steps", fmt.Sprint(*steps), "-warmup", "0", "-rss-every", fmt.Sprint(*every)).Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	var r struct {
		StepsPerS float64   `json:"steps_per_s"`
		Trace     []float64 `json:"rss_trace_mb"`
		Live      int64     `json:"live_tensors"`
		Peak      float64   `json:"peak_rss_mb"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Trace) < 2 {
		fmt.Fprintf(os.Stderr, "soak: bad output %q\n", out)
		os.Exit(1)
	}
	fmt.Println("step      RSS MB")
	for i, v := range r.Trace {
		fmt.Printf("%-9d %.1f\n", (i+1)*(*every), v)
	}
	growth := (r.Trace[len(r.Trace)-1] - r.Trace[0]) / r.Trace[0] * 100
	fmt.Printf("RSS growth from step %d to %d: %+.2f%% (limit 5%%); peak %.1f MB; %.0f steps/s; %d live tensor handles at the end\n",
		*every, *steps, growth, r.Peak, r.StepsPerS, r.Live)
	if growth >= 5 {
		fmt.Println("FAIL: memory is not flat")
		os.Exit(1)
	}
	fmt.Println("PASS")
}
