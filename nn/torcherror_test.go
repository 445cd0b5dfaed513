package nn

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// shapeMismatch makes libtorch throw: (2,3)·(2,3) cannot be multiplied.
func shapeMismatch() error {
	a := ts.MustOnes([]int64{2, 3}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	_, err := a.Matmul(a, false)
	return err
}

// Patch 0011: a libtorch error reads as one line, without libtorch's C++
// backtrace and without the goroutine's stack that gotch appended.
func TestTorchErrorIsOneLine(t *testing.T) {
	defer LockThread()()
	t.Setenv("MOLLIFY_TORCH_TRACE", "")
	var recovered error
	func() {
		defer Recover(&recovered)
		a := ts.MustOnes([]int64{2, 3}, gotch.Float, gotch.CPU)
		defer a.MustDrop()
		a.MustMatmul(a, false)
	}()
	for name, err := range map[string]error{"Matmul": shapeMismatch(), "MustMatmul through Recover": recovered} {
		if err == nil {
			t.Fatalf("%s: no error for a (2,3)·(2,3) product", name)
		}
		msg := err.Error()
		if !strings.Contains(msg, "mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)") {
			t.Errorf("%s: the message lost libtorch's words: %q", name, msg)
		}
		for _, noise := range []string{"\n", "frame #", "Exception raised from", "goroutine"} {
			if strings.Contains(msg, noise) {
				t.Errorf("%s: the message holds %q: %q", name, noise, msg)
			}
		}
	}
}

// MOLLIFY_TORCH_TRACE keeps both traces, for debugging the binding.
func TestTorchErrorTraceOnRequest(t *testing.T) {
	defer LockThread()()
	t.Setenv("MOLLIFY_TORCH_TRACE", "1")
	err := shapeMismatch()
	if err == nil {
		t.Fatal("no error for a (2,3)·(2,3) product")
	}
	for _, want := range []string{"Exception raised from", "goroutine"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("with MOLLIFY_TORCH_TRACE=1 the message has no %q: %q", want, err.Error())
		}
	}
}
