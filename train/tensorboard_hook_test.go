package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mollify/mollify/train/tensorboard/tbread"
)

// jsonNumbers are the numbers of metrics.jsonl as TensorBoard scalars:
// tag <kind>/<key> → step → float32 value (booleans as 0 and 1, "NaN"
// and "±Inf" as those floats).
func jsonNumbers(t *testing.T, dir string) map[string]map[int64]float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, metricsName))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int64]float32{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		step := int64(r["step"].(float64))
		for k, v := range r {
			var x float64
			switch v := v.(type) {
			case float64:
				x = v
			case bool:
				if v {
					x = 1
				}
			case string: // Metric writes NaN and ±Inf as strings
				var err error
				if x, err = strconv.ParseFloat(v, 64); err != nil || !math.IsNaN(x) && !math.IsInf(x, 0) {
					continue
				}
			default:
				continue
			}
			if k == "step" {
				continue
			}
			tag := fmt.Sprint(r["kind"], "/", k)
			if out[tag] == nil {
				out[tag] = map[int64]float32{}
			}
			out[tag][step] = float32(x)
		}
	}
	return out
}

func eventFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := tbread.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sortedTags(m map[string]map[int64]float32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A run leaves one event file whose scalars are exactly the numbers of
// metrics.jsonl (tag <kind>/<key>, same step, float32 of the value), and
// whose image is the PNG a hook handed to Image, at its step; strings
// stay out. Read with the reader written from the format specs.
func TestTensorBoardHoldsEveryMetric(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(30)
	dir := t.TempDir()
	tr := newTrainer(t, c, dir, data)
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 6, 4))); err != nil {
		t.Fatal(err)
	}
	grid := buf.Bytes()
	tr.Hooks = append(tr.Hooks, Hook{Name: "eval", Every: 20, Fn: func(tr *Trainer, _ *StepStats) error {
		if err := tr.Metric("eval", map[string]any{"bpd": 1.5, "note": "text", "count": 3, "nll": math.Inf(1)}); err != nil {
			return err
		}
		return tr.Image("samples", grid)
	}})
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	files := eventFiles(t, dir)
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
	got, want := tbread.Scalars(evs), jsonNumbers(t, dir)
	for _, tag := range []string{"train/loss", "train/lr", "train/sigma2", "train/mollified", "train/nll", "train/step_ms", "eval/bpd", "eval/count", "eval/nll"} {
		if want[tag] == nil {
			t.Errorf("metrics.jsonl has no %s; the test's premise is wrong", tag)
		}
	}
	if fmt.Sprint(sortedTags(got)) != fmt.Sprint(sortedTags(want)) {
		t.Errorf("tags\n%v\nwant (metrics.jsonl)\n%v", sortedTags(got), sortedTags(want))
	}
	for tag, steps := range want {
		for step, v := range steps {
			g, ok := got[tag][step]
			if !ok || g != v && !(math.IsNaN(float64(g)) && math.IsNaN(float64(v))) {
				t.Errorf("%s at step %d: %g (present %v), metrics.jsonl %g", tag, step, g, ok, v)
			}
		}
	}
	if s := slices.Sorted(maps.Keys(got["train/loss"])); fmt.Sprint(s) != "[10 20 30]" {
		t.Errorf("train/loss at steps %v, want [10 20 30]", s)
	}
	if v := got["eval/nll"][20]; !math.IsInf(float64(v), 1) {
		t.Errorf("eval/nll %g, want +Inf (metrics.jsonl writes it as a string)", v)
	}
	var images int
	for _, ev := range evs {
		for _, v := range ev.Values {
			if v.Image != nil {
				images++
				if v.Tag != "samples" || ev.Step != 20 || !bytes.Equal(v.Image.Encoded, grid) || v.Image.Height != 4 || v.Image.Width != 6 || v.Image.Colorspace != 1 {
					t.Errorf("image %q at step %d: %d×%d colorspace %d", v.Tag, ev.Step, v.Image.Height, v.Image.Width, v.Image.Colorspace)
				}
			}
		}
	}
	if images != 1 {
		t.Errorf("%d images, want 1", images)
	}
}

// A killed run and its resume leave two event files; the resumed one
// starts with SessionLog START after the checkpoint, so TensorBoard's
// merge of the folder (orphaned steps dropped) shows the uninterrupted
// run's curves.
func TestTensorBoardAfterResume(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(40)
	hooks := func() []Hook { return []Hook{CheckpointHook(10), MetricsHook(5)} }
	straight := newTrainer(t, c, t.TempDir(), data)
	straight.Hooks = hooks()
	if err := straight.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := newTrainer(t, c, dir, data)
	first.Hooks = hooks()
	if err := first.RunUntil(27); err != nil { // killed at 27, last checkpoint at 20
		t.Fatal(err)
	}
	resumed := newTrainer(t, c, dir, data)
	resumed.Hooks = hooks()
	if err := resumed.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := resumed.Run(); err != nil {
		t.Fatal(err)
	}
	files := eventFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("event files %v, want two", files)
	}
	second, err := tbread.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(second) < 2 || !second[1].HasSessionLog || second[1].SessionStatus != 1 || second[1].Step != 21 {
		t.Errorf("resumed file starts %+v, want file_version then SessionLog START at step 21", second[:min(2, len(second))])
	}
	killed, err := tbread.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbread.Scalars(killed)["train/loss"][25]; !ok {
		t.Error("the killed run's file lacks step 25, so the purge is not tested")
	}
	merged, err := tbread.Merged(files)
	if err != nil {
		t.Fatal(err)
	}
	all, err := tbread.Merged(eventFiles(t, straight.Dir))
	if err != nil {
		t.Fatal(err)
	}
	got, want := series(merged), series(all)
	if len(want["train/loss"]) != 8 {
		t.Errorf("uninterrupted train/loss %v, want 8 points", want["train/loss"])
	}
	for _, tag := range []string{"train/loss", "train/nll", "train/sigma2", "train/lr"} {
		if fmt.Sprint(got[tag]) != fmt.Sprint(want[tag]) {
			t.Errorf("%s after resume, merged as TensorBoard does:\n%v\nuninterrupted:\n%v", tag, got[tag], want[tag])
		}
	}
}

// series lists each tag's scalars in file order as "step:value", so that
// a step logged twice shows.
func series(evs []tbread.Event) map[string][]string {
	out := map[string][]string{}
	for _, ev := range evs {
		for _, v := range ev.Values {
			if v.HasSimple {
				out[v.Tag] = append(out[v.Tag], fmt.Sprintf("%d:%g", ev.Step, v.Simple))
			}
		}
	}
	return out
}

// run.tensorboard=false writes no event file.
func TestTensorBoardOff(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(10)
	c.Run.TensorBoard = false
	dir := t.TempDir()
	tr := newTrainer(t, c, dir, data)
	tr.Hooks = append(tr.Hooks, Hook{Name: "img", AtEnd: true, Fn: func(tr *Trainer, _ *StepStats) error {
		return tr.Image("samples", []byte("not even a PNG: never looked at"))
	}})
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	if files := eventFiles(t, dir); len(files) != 0 {
		t.Errorf("event files %v with run.tensorboard=false", files)
	}
	if _, err := os.Stat(filepath.Join(dir, metricsName)); err != nil {
		t.Errorf("metrics.jsonl: %v", err)
	}
}
