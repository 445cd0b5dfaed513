package experiments

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/classifier"
	"github.com/mollify/mollify/fid/inception"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/plots"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// fidSeed fixes the latent noise of the FID samples, so successive
// evaluations differ by the model only.
const fidSeed = 0x46494453

// fidChunk is how many images go through the feature network at once
// (pytorch-fid's default batch size).
const fidChunk = 50

// FID measures sample quality during an image run: every eval.every steps
// and at the end it draws eval.fid_samples samples (temperature 1, fixed
// noise), quantises them to 8 bits as saved PNGs would be, and compares
// their Inception statistics with the training set's. The value goes to
// metrics.jsonl (kind "fid") and fid.png (FID against step).
//
// Without the Inception weights ($MOLLIFY_INCEPTION) on an MNIST run whose
// data root holds the classifier of `go run ./cmd/fid train-classifier`, it
// reports the Fréchet classifier distance instead, always under the name
// "fcd" (metric kind, key and figure fcd.png); otherwise it is off.
//
// The reference statistics are computed once and cached under
// <data.root>/fid_stats/, keyed by a hash of the images as the network
// sees them (dataset, split, size, channels, pixels) and of the network
// (weights file, dims). eval.fid_stats, when that file exists, is used
// instead (e.g. pytorch-fid's published statistics).
type FID struct {
	cfg    *config.Config
	model  models.Sampler
	tr     data.Transform
	net    fid.FeatureNet
	closer func()
	metric string // "fid" or "fcd"
	netID  string // what the network is, for the cache key
	log    io.Writer

	ref    *fid.Stats
	steps  []float64
	values []float64
	loaded bool // earlier values read back from metrics.jsonl
}

// NewFID prepares the evaluation, or returns nil (and says why on log)
// when it is off: eval.fid_samples is 0, or no network is available. A
// model that cannot sample (nil s) is an error. Weights that are there but unusable, or fewer
// than 2 samples, are errors; no more samples than feature dimensions give a
// singular covariance and an unreliable value, computed anyway (as by
// pytorch-fid) after one warning on log. The result's methods accept a nil
// receiver.
func NewFID(cfg *config.Config, s models.Sampler, device gotch.Device, tr data.Transform, log io.Writer) (*FID, error) {
	n := cfg.Eval.FIDSamples
	if n == 0 {
		return nil, nil
	}
	if s == nil {
		return nil, fmt.Errorf("eval.fid_samples=%d, but model %s cannot sample (set eval.fid_samples=0)", n, cfg.Model.Name)
	}
	e := &FID{cfg: cfg, model: s, tr: tr, log: log, metric: "fid"}
	path, err := inception.WeightsPath("")
	switch {
	case err == nil:
		m, err := inception.Load(path, inception.Options{Device: device})
		if err != nil {
			return nil, fmt.Errorf("eval.fid_samples: %w", err)
		}
		e.net, e.closer = m, m.Close
		if e.netID, err = fileHash(path); err != nil {
			m.Close()
			return nil, err
		}
		e.netID = "inception-pt_inception-2015-12-05:" + e.netID
	case errors.Is(err, inception.ErrNoWeights):
		if cfg.Data.Dataset != "mnist" {
			fmt.Fprintf(log, "no FID during training: %v\n", err)
			return nil, nil
		}
		cpath := classifier.Path(cfg.Data.Root)
		c, cerr := classifier.Load(cpath, device)
		if cerr != nil {
			fmt.Fprintf(log, "no FID during training (%v), and no FCD fallback: %v\n", err, cerr)
			return nil, nil
		}
		e.net, e.closer, e.metric = c, c.Close, "fcd"
		if e.netID, err = fileHash(cpath); err != nil {
			c.Close()
			return nil, err
		}
		e.netID = "fcd-mnist-classifier:" + e.netID
		fmt.Fprintf(log, "no Inception weights: reporting the Fréchet classifier distance (\"fcd\", MNIST classifier, test accuracy %.4f), not FID\n", c.Accuracy)
	default:
		return nil, err
	}
	// As pytorch-fid: a singular covariance (samples ≤ dims) is computed,
	// with the warning said once here; fewer than 2 samples cannot be.
	if err := fid.CheckCount("eval.fid_samples", n, e.net.Dim()); errors.Is(err, fid.ErrSingularCovariance) {
		fmt.Fprintf(log, "%s warning: %s\n", e.metric, strings.TrimPrefix(err.Error(), "fid: "))
	} else if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close frees the network.
func (e *FID) Close() {
	if e != nil && e.closer != nil {
		e.closer()
		e.closer = nil
	}
}

// Metric is "fid" or "fcd"; "" when off.
func (e *FID) Metric() string {
	if e == nil {
		return ""
	}
	return e.metric
}

// Hooks evaluates every eval.every steps and at the end.
func (e *FID) Hooks() []train.Hook {
	if e == nil {
		return nil
	}
	return []train.Hook{{Name: e.metric, Every: e.cfg.Eval.Every, AtEnd: true, Fn: func(t *train.Trainer, _ *train.StepStats) error {
		return e.evaluate(t)
	}}}
}

func (e *FID) evaluate(t *train.Trainer) error {
	if e.ref == nil {
		ref, err := e.reference()
		if err != nil {
			return err
		}
		e.ref = ref
	}
	if !e.loaded {
		e.loaded = true
		e.readBack(t)
	}
	start := time.Now()
	var st *fid.Stats
	err := withSeed(t, fidSeed, func() (err error) {
		st, err = e.sampleStats()
		return err
	})
	rec := map[string]any{"samples": e.cfg.Eval.FIDSamples, "dims": e.net.Dim(), "seconds": time.Since(start).Seconds()}
	value := math.NaN()
	if err == nil {
		value, err = fid.FID(e.ref, st)
	}
	if err != nil {
		// A diverged model must not end the run: record the failure.
		rec["error"] = err.Error()
		fmt.Fprintf(t.Log, "%s step %d: not computed: %v\n", e.metric, t.Steps(), err)
	} else {
		fmt.Fprintf(t.Log, "%s step %d: %.4f (%d samples, %s)\n", e.metric, t.Steps(), value, e.cfg.Eval.FIDSamples, time.Since(start).Round(time.Second))
	}
	rec[e.metric] = value
	if err := t.Metric(e.metric, rec); err != nil {
		return err
	}
	e.steps = append(e.steps, float64(t.Steps()))
	e.values = append(e.values, value)
	return e.plot(t.Dir)
}

// sampleStats draws the samples batch by batch and accumulates their
// features.
func (e *FID) sampleStats() (st *fid.Stats, err error) {
	defer nn.Recover(&err)
	acc, err := fid.NewAccumulator(e.net.Dim())
	if err != nil {
		return nil, err
	}
	n := e.cfg.Eval.FIDSamples
	bs := e.cfg.Eval.BatchSize
	if bs <= 0 {
		bs = e.cfg.Data.BatchSize
	}
	for done := 0; done < n; {
		m := min(bs, n-done)
		err := func() error {
			sc := ts.NewScope()
			defer sc.Close()
			var x *ts.Tensor
			var err error
			ts.NoGrad(func() { x, err = e.model.Sample(int64(m), 1) })
			if err != nil {
				return err
			}
			u8, err := e.tr.Quantize(x)
			if err != nil {
				return err
			}
			x.MustDrop()
			for lo := 0; lo < m; lo += fidChunk {
				if err := e.addChunk(acc, u8.MustNarrow(0, int64(lo), int64(min(fidChunk, m-lo)), false)); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
		done += m
	}
	return acc.Stats()
}

func (e *FID) addChunk(acc *fid.Accumulator, u8 *ts.Tensor) error {
	sc := ts.NewScope()
	defer sc.Close()
	x, err := fid.UnitTensor(u8, e.net.Device())
	if err != nil {
		return err
	}
	return fid.Accumulate(acc, e.net, x)
}

// reference returns the training set's statistics: eval.fid_stats if that
// file exists, else the cache, else computed and cached.
func (e *FID) reference() (*fid.Stats, error) {
	d := e.cfg.Data
	if p := e.cfg.Eval.FIDStats; p != "" && e.metric == "fid" {
		if _, err := os.Stat(p); err == nil {
			s, err := fid.LoadStats(p)
			if err != nil {
				return nil, fmt.Errorf("eval.fid_stats: %w", err)
			}
			if s.Dim() != e.net.Dim() {
				return nil, fmt.Errorf("eval.fid_stats: %s holds %d-d statistics, the network gives %d", p, s.Dim(), e.net.Dim())
			}
			fmt.Fprintf(e.log, "%s reference statistics from eval.fid_stats %s\n", e.metric, p)
			return s, nil
		}
		fmt.Fprintf(e.log, "eval.fid_stats %s does not exist: using the training set's statistics\n", p)
	}
	ds, err := data.LoadImages(d.Dataset, d.Root, data.Train, d.ImageSize, d.Channels, e.log)
	if err != nil {
		return nil, err
	}
	key := e.cacheKey(ds)
	path := filepath.Join(d.Root, "fid_stats", key.file())
	if s, err := fid.LoadStats(path); err == nil && s.Dim() == e.net.Dim() {
		fmt.Fprintf(e.log, "%s reference statistics from %s\n", e.metric, path)
		return s, nil
	}
	fmt.Fprintf(e.log, "%s reference: statistics of the %d training images (cached at %s)...\n", e.metric, ds.Len(), path)
	if err := fid.CheckCount("the "+d.Dataset+" training set", ds.Len(), e.net.Dim()); errors.Is(err, fid.ErrSingularCovariance) {
		fmt.Fprintf(e.log, "%s warning: %s\n", e.metric, strings.TrimPrefix(err.Error(), "fid: "))
	}
	start := time.Now()
	s, err := fid.DatasetStats(e.net, ds, fidChunk, nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := fid.SaveStats(path, s); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(key, "", "  ")
	if err := os.WriteFile(path[:len(path)-len(".npz")]+".json", b, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.log, "%s reference statistics done in %s\n", e.metric, time.Since(start).Round(time.Second))
	return s, nil
}

// statsKey identifies reference statistics; Hash covers every field.
type statsKey struct {
	Dataset  string `json:"dataset"`
	Split    string `json:"split"`
	Channels int    `json:"channels"`
	Size     int    `json:"size"`
	Images   int    `json:"images"`
	Pixels   string `json:"pixels_sha256"`
	Network  string `json:"network"`
	Dims     int    `json:"dims"`
	Hash     string `json:"hash"`
}

func (k statsKey) file() string {
	return fmt.Sprintf("%s_%s_%dx%dx%d_%s%d_%s.npz", k.Dataset, k.Split, k.Channels, k.Size, k.Size, k.metric(), k.Dims, k.Hash[:12])
}

func (k statsKey) metric() string {
	if len(k.Network) >= 3 && k.Network[:3] == "fcd" {
		return "fcd"
	}
	return "fid"
}

// cacheKey hashes the images as the network sees them: any change in the
// preprocessing (crop, resize, padding, channels) changes the pixels.
func (e *FID) cacheKey(ds data.Dataset) statsKey {
	c, h, _ := ds.Shape()
	ph := sha256.New()
	for i := 0; i < ds.Len(); i++ {
		p, _ := ds.Example(i)
		ph.Write(p)
	}
	k := statsKey{Dataset: e.cfg.Data.Dataset, Split: string(data.Train), Channels: c, Size: h, Images: ds.Len(),
		Pixels: hex.EncodeToString(ph.Sum(nil)), Network: e.netID, Dims: e.net.Dim()}
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	k.Hash = hex.EncodeToString(sum[:])
	return k
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readBack restores the curve of a resumed run from metrics.jsonl.
func (e *FID) readBack(t *train.Trainer) {
	f, err := os.Open(filepath.Join(t.Dir, "metrics.jsonl"))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["kind"] != e.metric {
			continue
		}
		step, ok1 := rec["step"].(float64)
		v, ok2 := rec[e.metric].(float64)
		// Evaluations at the checkpoint's step ran before it was saved.
		if ok1 && ok2 && int(step) <= t.Steps() {
			e.steps = append(e.steps, step)
			e.values = append(e.values, v)
		}
	}
}

func (e *FID) plot(dir string) error {
	name, ylabel := "FID", fmt.Sprintf("FID (%d samples)", e.cfg.Eval.FIDSamples)
	if e.metric == "fcd" {
		name, ylabel = "FCD", fmt.Sprintf("FCD, MNIST classifier (%d samples)", e.cfg.Eval.FIDSamples)
	}
	p, err := plots.Curves(name+" during training", "step", ylabel, false, plots.Series{Name: e.metric, X: e.steps, Y: e.values})
	if err != nil {
		return err
	}
	return plots.SaveTiles(filepath.Join(dir, e.metric+".png"), [][]*plot.Plot{{p}}, 4*vg.Inch)
}
