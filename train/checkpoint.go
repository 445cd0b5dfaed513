package train

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train/tensorboard"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// A checkpoint is one safetensors file holding the model ("model.<name>"),
// the optimizer state ("optim.*"), libtorch's generator states ("rng.*"),
// and in its metadata the step, the Go RNG state, the skip counters and the
// resolved config. It is written atomically (temporary file + rename).
// The hooks' generator stream is "rng.hooks.*" (rngstreams.go). A
// distributed run's checkpoint is written by rank 0 and holds every
// rank's training-noise state, Go RNG and step ("ranks" in the metadata),
// gathered by a collective that every rank joins.

func checkpointDir(runDir string) string { return filepath.Join(runDir, "checkpoints") }

func checkpointPath(runDir string, step int) string {
	return filepath.Join(checkpointDir(runDir), fmt.Sprintf("ckpt-%09d.safetensors", step))
}

// Checkpoints lists a run's checkpoints, oldest first.
func Checkpoints(runDir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(checkpointDir(runDir), "ckpt-*.safetensors"))
	if err != nil {
		return nil, err
	}
	sort.Strings(m) // zero-padded step numbers sort in order
	return m, nil
}

// SaveCheckpoint writes the current state and prunes old checkpoints down
// to output.keep. In a distributed run every rank calls it (the hook is
// AllRanks): all take part in gathering the ranks' states, and rank 0
// writes the file; the others return "".
func (t *Trainer) SaveCheckpoint() (path string, err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	rng, hookRNG, goState, err := t.checkpointStreams()
	if err != nil {
		return "", err
	}
	var ranks string
	if t.distributed() && t.WorldSize() > 1 {
		mine := rankState{Rank: t.Rank(), Step: t.step, RNG: map[string][]byte{}, Go: goState}
		for k, v := range rng {
			mine.RNG[k] = v.MustTotype(gotch.Uint8, false).MustTo(gotch.CPU, false).MustDetachCopy(false).Vals().([]uint8)
		}
		all, err := t.gatherRanks(mine)
		if err != nil {
			return "", fmt.Errorf("train: gathering the ranks' states for the checkpoint: %w", err)
		}
		if !t.Leader() {
			return "", nil
		}
		if ranks, err = encodeRanks(all); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(checkpointDir(t.Dir), 0o755); err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	tensors := map[string]*ts.Tensor{}
	for n, v := range t.Store.Named() {
		tensors["model."+n] = v
	}
	state, optStep := t.Optim.State()
	for n, v := range state {
		tensors[n] = v
	}
	for n, v := range rng {
		tensors[n] = v
	}
	for n, v := range hookRNG {
		tensors[n] = v
	}
	meta := map[string]string{
		"step":       strconv.Itoa(t.step),
		"optim_step": strconv.FormatInt(optStep, 10),
		"go_rng":     base64.StdEncoding.EncodeToString(goState),
		"nonfinite":  strconv.Itoa(t.nonFinite),
		"skipped":    strconv.Itoa(t.skipped),
		"seed":       strconv.FormatUint(t.RNG.Seed, 10),
		"config":     t.Options.RunConfig,
		"format":     "mollify-checkpoint-1",
	}
	if ranks != "" {
		meta[ranksMetaKey] = ranks
	}
	// metrics.jsonl's length now: rows a killed run writes after this
	// checkpoint are cut off on resume instead of appearing twice.
	if st, err := os.Stat(filepath.Join(t.Dir, metricsName)); err == nil {
		meta["metrics_bytes"] = strconv.FormatInt(st.Size(), 10)
	}
	for _, h := range t.Hooks {
		if h.State == nil {
			continue
		}
		b, err := h.State.MarshalState()
		if err != nil {
			return "", fmt.Errorf("train: saving the state of hook %s: %w", h.Name, err)
		}
		meta[hookStateKey(h.Name)] = base64.StdEncoding.EncodeToString(b)
	}
	path = checkpointPath(t.Dir, t.step)
	if err := nn.SaveTensors(path, tensors, meta); err != nil {
		return "", err
	}
	t.lastCkpt = path
	if keep := t.Options.Keep; keep > 0 {
		all, _ := Checkpoints(t.Dir)
		for len(all) > keep {
			os.Remove(all[0])
			all = all[1:]
		}
	}
	return path, nil
}

// Resume loads the newest checkpoint of the run folder into the trainer, so
// that Run continues where it stopped. It returns nn.ErrNoCheckpoint when
// there is none (a fresh run).
func (t *Trainer) Resume() (err error) {
	all, err := Checkpoints(t.Dir)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		// The run starts over: what an attempt killed before its first
		// checkpoint logged goes, as a resume cuts the logs back to its
		// checkpoint, so no step is logged twice.
		if t.Leader() {
			if err := t.clearLogs(); err != nil {
				return err
			}
		}
		return fmt.Errorf("train: %s: %w", t.Dir, nn.ErrNoCheckpoint)
	}
	return t.LoadCheckpoint(all[len(all)-1])
}

// clearLogs removes metrics.jsonl and the TensorBoard event files.
func (t *Trainer) clearLogs() error {
	old, _ := filepath.Glob(filepath.Join(t.Dir, tensorboard.FilePrefix+"*"))
	for _, p := range append(old, filepath.Join(t.Dir, metricsName)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("train: starting %s over: %w", t.Dir, err)
		}
	}
	return nil
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint.
func (t *Trainer) LoadCheckpoint(path string) (err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	tensors, meta, err := loadModelPart(path, t.Store)
	if err != nil {
		return err
	}
	atoi := func(k string) (int64, error) {
		v, err := strconv.ParseInt(meta[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("train: %s: bad %s in metadata: %w", path, k, err)
		}
		return v, nil
	}
	optStep, err := atoi("optim_step")
	if err != nil {
		return err
	}
	if err := t.Optim.LoadState(tensors, optStep); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	goState, err := base64.StdEncoding.DecodeString(meta["go_rng"])
	if err != nil {
		return fmt.Errorf("train: %s: bad go_rng: %w", path, err)
	}
	if err := t.RNG.Restore(t.Device, tensors, goState); err != nil {
		return err
	}
	step, err := atoi("step")
	if err != nil {
		return err
	}
	if err := t.restoreRank(meta, int(step)); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if err := t.restoreHookStream(tensors); err != nil {
		return err
	}
	for _, h := range t.Hooks {
		if h.State == nil || !t.Leader() && !h.AllRanks {
			continue
		}
		enc, ok := meta[hookStateKey(h.Name)]
		if !ok {
			fmt.Fprintf(t.logger(), "train: %s has no state for hook %s (an older checkpoint?); its outputs restart at this step\n", path, h.Name)
			continue
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err == nil {
			err = h.State.UnmarshalState(b)
		}
		if err != nil {
			return fmt.Errorf("train: %s: restoring the state of hook %s: %w", path, h.Name, err)
		}
	}
	if v, ok := meta["metrics_bytes"]; ok && t.Leader() {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("train: %s: bad metrics_bytes in metadata: %w", path, err)
		}
		if err := truncateMetrics(filepath.Join(t.Dir, metricsName), n); err != nil {
			return err
		}
	}
	nonFinite, _ := atoi("nonfinite")
	skipped, _ := atoi("skipped")
	t.step, t.nonFinite, t.skipped = int(step), int(nonFinite), int(skipped)
	t.lastCkpt = path
	hooks, err := t.rankHooks()
	if err != nil {
		return err
	}
	if err := t.initHookStream(); err != nil {
		return err
	}
	return t.onHookStream(func() error {
		for _, h := range hooks {
			if h.Resume != nil {
				if err := h.Resume(t); err != nil {
					return fmt.Errorf("train: hook %s on resume: %w", h.Name, err)
				}
			}
		}
		return nil
	})
}

func hookStateKey(name string) string { return "hook." + name }

// truncateMetrics cuts metrics.jsonl back to its length at a checkpoint.
func truncateMetrics(path string, n int64) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if st.Size() <= n {
		return nil
	}
	if err := os.Truncate(path, n); err != nil {
		return fmt.Errorf("train: cutting %s back to the checkpoint: %w", path, err)
	}
	return nil
}

// CheckpointHook saves every `every` steps and at the end, after every
// other hook of the step.
func CheckpointHook(every int) Hook {
	return Hook{Name: "checkpoint", Priority: PriorityCheckpoint, Every: every, AtEnd: true, AllRanks: true, Fn: func(t *Trainer, _ *StepStats) error {
		_, err := t.SaveCheckpoint()
		return err
	}}
}

// LoadModelWeights copies the model part of a checkpoint ("model.*") into
// a store, for sampling or evaluation without the optimizer.
func LoadModelWeights(path string, store *nn.Store) (err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	_, _, err = loadModelPart(path, store)
	return err
}

// loadModelPart reads a checkpoint, checks its format and loads its model
// part into store. The returned tensors belong to the caller's open scope.
func loadModelPart(path string, store *nn.Store) (map[string]*ts.Tensor, map[string]string, error) {
	tensors, meta, err := nn.LoadTensors(path)
	if err != nil {
		return nil, nil, err
	}
	if meta["format"] != "mollify-checkpoint-1" {
		return nil, nil, fmt.Errorf("train: %s is not a mollify checkpoint", path)
	}
	model := map[string]*ts.Tensor{}
	for n, v := range tensors {
		if name, ok := strings.CutPrefix(n, "model."); ok {
			model[name] = v
		}
	}
	if err := store.Load(model); err != nil {
		return nil, nil, fmt.Errorf("train: %s: %w", path, err)
	}
	return tensors, meta, nil
}
