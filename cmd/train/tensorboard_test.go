package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mollify/mollify/train/tensorboard/tbread"
)

// A short real run leaves one TensorBoard event file in its folder that
// the reader written from the format specs decodes: the training, MMD and
// validation scalars at their steps, and for an image run each saved
// sample grid, byte for byte, at its step. run.tensorboard=false leaves
// none.
func TestRunWritesTensorBoardEvents(t *testing.T) {
	imageRun := []string{"-config", "glow_cifar10", "--set", "data.dataset=mnist", "--set", "data.channels=1", "--set", "data.image_size=32",
		"--set", "run.iterations=10", "--set", "data.batch_size=8", "--set", "eval.every=5", "--set", "eval.bpd_samples=16",
		"--set", "output.samples_every=5", "--set", "output.num_samples=8", "--set", "run.log_every=5", "--set", "run.device=cpu",
		"--set", "output.checkpoint_every=10", "--set", "eval.fid_samples=0", "--set", "model.glow.levels=2", "--set", "model.glow.depth=1",
		"--set", "model.glow.hidden=8", "--set", "mollification.iterations=5"}
	cases := []struct {
		name   string
		args   []string
		tags   map[string]string // tag → its steps
		images string            // steps of "samples" images
	}{
		{"2-D", []string{"-config", "demo", "--set", "run.iterations=100", "--set", "run.log_every=25", "--set", "eval.every=50",
			"--set", "eval.mmd_samples=200", "--set", "data.train_size=400", "--set", "data.test_size=200", "--set", "output.samples_every=100",
			"--set", "output.checkpoint_every=100", "--set", "output.plots=false"},
			map[string]string{"train/loss": "[25 50 75 100]", "train/sigma2": "[25 50 75 100]", "train/lr": "[25 50 75 100]",
				"train/mollified": "[25 50 75 100]", "eval/mmd2_paper_kernel": "[50 100]", "eval/test_nll": "[50 100]"}, "[]"},
		{"image", imageRun, map[string]string{"train/loss": "[5 10]", "train/sigma2": "[5 10]", "eval/bpd": "[5 10]", "eval/nll": "[5 10]"}, "[5 10]"},
		{"off", append(slices.Clone(imageRun), "--set", "run.tensorboard=false"), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := run(append([]string{"-run-dir", dir}, c.args...)); err != nil {
				t.Fatal(err)
			}
			files, err := tbread.Files(dir)
			if err != nil {
				t.Fatal(err)
			}
			if c.tags == nil {
				if len(files) != 0 {
					t.Errorf("run.tensorboard=false left %v", files)
				}
				return
			}
			if len(files) != 1 {
				t.Fatalf("event files %v, want one", files)
			}
			evs, err := tbread.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if evs[0].FileVersion != "brain.Event:2" {
				t.Errorf("first event %+v", evs[0])
			}
			scalars := tbread.Scalars(evs)
			for tag, want := range c.tags {
				if got := fmt.Sprint(slices.Sorted(maps.Keys(scalars[tag]))); got != want {
					t.Errorf("%s at steps %s, want %s", tag, got, want)
				}
			}
			var steps []int64
			for _, ev := range evs {
				for _, v := range ev.Values {
					if v.Image == nil {
						continue
					}
					steps = append(steps, ev.Step)
					want, err := os.ReadFile(filepath.Join(dir, "samples", fmt.Sprintf("step-%09d.png", ev.Step)))
					if v.Tag != "samples" || err != nil || !bytes.Equal(v.Image.Encoded, want) || v.Image.Colorspace != 3 {
						t.Errorf("image %q at step %d (colorspace %d) is not the saved grid (%v)", v.Tag, ev.Step, v.Image.Colorspace, err)
					}
				}
			}
			if fmt.Sprint(steps) != c.images {
				t.Errorf("images at steps %v, want %s", steps, c.images)
			}
		})
	}
}
