package train

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// A checkpoint is one safetensors file holding the model ("model.<name>"),
// the optimizer state ("optim.*"), libtorch's generator states ("rng.*"),
// and in its metadata the step, the Go RNG state, the skip counters and the
// resolved config. It is written atomically (temporary file + rename).

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
// to output.keep.
func (t *Trainer) SaveCheckpoint() (path string, err error) {
	defer nn.Recover(&err)
	if err := os.MkdirAll(checkpointDir(t.Dir), 0o755); err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	tensors := map[string]*ts.Tensor{}
	for n, v := range t.Store.Named() {
		tensors["model."+n] = v
	}
	state, optStep := t.Optim.State()
	for n, v := range state {
		tensors[n] = v
	}
	rng, goState, err := t.RNG.State(t.Device)
	if err != nil {
		return "", err
	}
	for n, v := range rng {
		tensors[n] = v
	}
	cfgYAML, err := t.Config.YAML()
	if err != nil {
		return "", err
	}
	meta := map[string]string{
		"step":       strconv.Itoa(t.step),
		"optim_step": strconv.FormatInt(optStep, 10),
		"go_rng":     base64.StdEncoding.EncodeToString(goState),
		"nonfinite":  strconv.Itoa(t.nonFinite),
		"skipped":    strconv.Itoa(t.skipped),
		"seed":       strconv.FormatUint(t.RNG.Seed, 10),
		"config":     string(cfgYAML),
		"format":     "mollify-checkpoint-1",
	}
	path = checkpointPath(t.Dir, t.step)
	if err := nn.SaveTensors(path, tensors, meta); err != nil {
		return "", err
	}
	t.lastCkpt = path
	if keep := t.Config.Output.Keep; keep > 0 {
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
		return fmt.Errorf("train: %s: %w", t.Dir, nn.ErrNoCheckpoint)
	}
	return t.LoadCheckpoint(all[len(all)-1])
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
	nonFinite, _ := atoi("nonfinite")
	skipped, _ := atoi("skipped")
	t.step, t.nonFinite, t.skipped = int(step), int(nonFinite), int(skipped)
	t.lastCkpt = path
	return nil
}

// CheckpointHook saves every `every` steps and at the end.
func CheckpointHook(every int) Hook {
	return Hook{Name: "checkpoint", Every: every, AtEnd: true, Fn: func(t *Trainer, _ *StepStats) error {
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
