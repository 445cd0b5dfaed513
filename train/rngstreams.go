package train

import (
	"errors"
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// Hooks (evaluation, samples, FID) draw from a generator stream of their
// own: before the hooks of a step run, the training stream's state is set
// aside and the hooks' put in place, and the other way round after. So
// the training noise (dequantisation, mollification, the model's own
// noise) does not depend on when hooks run or on which rank runs them:
// rank 0's evaluations leave its training stream in step with the other
// ranks', and a one-process run draws the same training noise as a
// distributed one. The hooks' stream starts from run.seed XOR hookSalt;
// checkpoints keep both ("rng.*" and "rng.hooks.*"). Only the device's
// generators are swapped (the CPU's, and the CUDA device's on a GPU).
const hookSalt = 0x686f6f6b73 // "hooks"

// generators are the libtorch generator indices of the trainer's device:
// -1 (the CPU), and the CUDA device's index on a GPU.
func (t *Trainer) generators() []int {
	if t.Device.IsCuda() {
		return []int{-1, t.Device.Value}
	}
	return []int{-1}
}

// rngStates copies the live generator states (detached from any scope).
func (t *Trainer) rngStates() (map[int]*ts.Tensor, error) {
	out := map[int]*ts.Tensor{}
	for _, g := range t.generators() {
		s, err := ts.RNGState(g)
		if err != nil {
			freeStates(out)
			return nil, fmt.Errorf("train: reading generator %d: %w", g, err)
		}
		out[g] = s
	}
	return out, nil
}

func setStates(states map[int]*ts.Tensor) error {
	for g, s := range states {
		if err := ts.SetRNGState(s, g); err != nil {
			return fmt.Errorf("train: setting generator %d: %w", g, err)
		}
	}
	return nil
}

func freeStates(states map[int]*ts.Tensor) {
	for _, s := range states {
		s.MustDrop()
	}
}

// detachedStates reads the states outside any open scope: they live
// across steps.
func (t *Trainer) detachedStates() (map[int]*ts.Tensor, error) {
	sc := ts.NewScope()
	defer sc.Close()
	st, err := t.rngStates()
	if err == nil {
		for _, s := range st {
			sc.Detach(s)
		}
	}
	return st, err
}

// initHookStream seeds the hooks' stream unless a checkpoint restored it,
// leaving the training stream as it was.
func (t *Trainer) initHookStream() error {
	if t.hookRNG != nil {
		return nil
	}
	train, err := t.detachedStates()
	if err != nil {
		return err
	}
	defer freeStates(train)
	var seed uint64
	if t.RNG != nil {
		seed = t.RNG.Seed
	}
	if err := ts.ManualSeed(seed ^ hookSalt); err != nil {
		return err
	}
	if t.hookRNG, err = t.detachedStates(); err != nil {
		return err
	}
	return setStates(train)
}

// enterHooks puts the hooks' stream in place; leaveHooks puts the
// training stream back and keeps the hooks' for next time.
func (t *Trainer) enterHooks() error {
	train, err := t.detachedStates()
	if err != nil {
		return err
	}
	if err := setStates(t.hookRNG); err != nil {
		freeStates(train)
		return err
	}
	t.trainRNG = train
	return nil
}

func (t *Trainer) leaveHooks() error {
	if t.trainRNG == nil {
		return nil
	}
	hooks, err := t.detachedStates()
	if err != nil {
		return err
	}
	freeStates(t.hookRNG)
	t.hookRNG = hooks
	err = setStates(t.trainRNG)
	freeStates(t.trainRNG)
	t.trainRNG = nil
	return err
}

// onHookStream runs fn (hooks' Start or Resume callbacks) on the hooks'
// stream.
func (t *Trainer) onHookStream(fn func() error) (err error) {
	if err := t.enterHooks(); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.leaveHooks()) }()
	return fn()
}

// checkpointStreams returns the states a checkpoint saves: the training
// stream's (under the rng.* names of nn.RNG.State) and the hooks'
// (rng.hooks.*), in the caller's scope, wherever it is called from.
func (t *Trainer) checkpointStreams() (train, hooks map[string]*ts.Tensor, goState []byte, err error) {
	defer nn.Recover(&err)
	live, err := t.rngStates()
	if err != nil {
		return nil, nil, nil, err
	}
	trainSrc, hookSrc := live, t.hookRNG
	if t.trainRNG != nil { // inside the hooks: the hooks' stream is live
		trainSrc, hookSrc = t.trainRNG, live
	}
	name := func(prefix string, g int) string {
		if g < 0 {
			return prefix + "cpu"
		}
		return prefix + "cuda"
	}
	train, hooks = map[string]*ts.Tensor{}, map[string]*ts.Tensor{}
	for g, s := range trainSrc {
		train[name("rng.", g)] = s.MustShallowClone()
	}
	for g, s := range hookSrc {
		hooks[name("rng.hooks.", g)] = s.MustShallowClone()
	}
	if t.RNG != nil {
		_, goState, err = t.RNG.State(t.Device)
	}
	return train, hooks, goState, err
}

// restoreHookStream takes the hooks' stream from a checkpoint's tensors
// (an older checkpoint has none: the stream starts afresh).
func (t *Trainer) restoreHookStream(tensors map[string]*ts.Tensor) error {
	states := map[int]*ts.Tensor{}
	for _, g := range t.generators() {
		key := "rng.hooks.cpu"
		if g >= 0 {
			key = "rng.hooks.cuda"
		}
		s, ok := tensors[key]
		if !ok {
			freeStates(states)
			if t.hookRNG != nil {
				freeStates(t.hookRNG)
				t.hookRNG = nil
			}
			return nil
		}
		sc := ts.NewScope()
		c := s.MustDetachCopy(false)
		sc.Detach(c)
		sc.Close()
		states[g] = c
	}
	if t.hookRNG != nil {
		freeStates(t.hookRNG)
	}
	t.hookRNG = states
	return nil
}
