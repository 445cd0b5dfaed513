package main

import (
	"fmt"
	"os"
	"time"

	"github.com/mollify/mollify/train"
)

// evalDelayVar makes rank 0's evaluations last longer, for the test that
// kills a rank while rank 0 evaluates (distributed_test.go): the other
// ranks then wait in a collective, as they do during a long FID.
const evalDelayVar = "MOLLIFY_TEST_EVAL_DELAY"

// evalDelayHook is a hook at the evaluation cadence that says so on
// stderr and sleeps for $MOLLIFY_TEST_EVAL_DELAY (a Go duration), or
// false without the variable.
func evalDelayHook(every int) (train.Hook, bool, error) {
	v := os.Getenv(evalDelayVar)
	if v == "" {
		return train.Hook{}, false, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return train.Hook{}, false, fmt.Errorf("%s=%q: want a positive Go duration such as 30s", evalDelayVar, v)
	}
	return train.Hook{Name: "test-eval-delay", Every: every, Fn: func(t *train.Trainer, _ *train.StepStats) error {
		fmt.Fprintf(os.Stderr, "evaluating at step %d (%s=%s)\n", t.Steps(), evalDelayVar, d)
		time.Sleep(d)
		return nil
	}}, true, nil
}
