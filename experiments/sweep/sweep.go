package sweep

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/google/renameio/v2"
	"github.com/mollify/mollify/config"
)

// Files of a sweep folder and of its run folders (see the package doc).
const (
	SweepCopyName = "sweep.yaml"     // the sweep file as given
	ManifestName  = "manifest.jsonl" // one ManifestEntry per run, in index order
	DoneName      = "done.json"      // written by cmd/train when a run finishes
	LogName       = "train.log"      // the worker's stdout and stderr, appended
	LockName      = ".lock"          // a live worker's pid and host
)

// IDLength is the number of hex digits of a run id.
const IDLength = 12

// IgnoredInID are the config keys a run id leaves out: where and how fast
// a run runs, where it writes, and how often it logs and checkpoints
// (run.tensorboard only adds event files beside metrics.jsonl).
// Changing one continues the same run (same folder); any other key makes a
// new run. run.cuda_graph is here because captured and eager steps compute
// the same thing (models tests check it bit for bit); the distributed.*
// keys because data.batch_size is the global batch whatever the number of
// processes (docs/distributed.md), except distributed.sync_batchnorm,
// which changes what a multi-process run computes, so it stays in the id.
var IgnoredInID = []string{"run.name", "run.device", "run.threads", "run.out_dir", "run.log_every",
	"run.cuda_graph", "run.tensorboard", "data.root", "output.checkpoint_every", "output.keep",
	"distributed.backend", "distributed.bucket_mb", "distributed.heartbeat_seconds", "distributed.timeout_minutes"}

// RunID is the id of the run a resolved config describes: the first
// IDLength hex digits of the SHA-256 of its YAML without the keys of
// IgnoredInID (blanked) and its source.
func RunID(c *config.Config) (string, error) {
	k := *c
	k.Source = ""
	k.Run.Name, k.Run.Device, k.Run.Threads, k.Run.OutDir, k.Run.LogEvery, k.Run.CUDAGraph = "", "", 0, "", 0, ""
	k.Run.TensorBoard = true
	k.Data.Root = ""
	k.Output.CheckpointEvery, k.Output.Keep = 0, 0
	k.Distributed = config.Distributed{SyncBatchNorm: c.Distributed.SyncBatchNorm}
	b, err := k.YAML()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:IDLength], nil
}

// Sweep is a sweep file, expanded into its runs.
type Sweep struct {
	Path   string // the file as given
	Name   string // the file's name without .yaml
	OutDir string // out_dir, default runs/sweeps/NAME
	Raw    []byte // the file's bytes, copied into OutDir as sweep.yaml
	// AxisKeys are the axes' keys in file order (the keys of Run.Labels).
	AxisKeys []string
	runs     []Run
}

// Run is one run of a sweep.
type Run struct {
	Index     int
	ID        string
	Base      string            // the config name or path given to config.Load
	Overrides []string          // key=value: the sweep's set, the base's set, then one per axis key
	Labels    map[string]string // axis key -> value ("0", "enabled=false")
	Config    *config.Config    // config.Load(Base, Overrides)
}

// SweepError lists every problem of a sweep file, one per line.
type SweepError struct {
	Path     string
	Problems []string
}

func (e *SweepError) Error() string {
	return fmt.Sprintf("sweep %s: %d problem(s):\n  %s", e.Path, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// sweepKeys are the keys a sweep file may have at its top level.
var sweepKeys = []string{"base", "out_dir", "set", "axes"}

// base is one entry of base: a config and the overrides for its runs.
type base struct {
	config string
	set    []string
}

// axisValue is one value of an axis: its label and the overrides it makes.
type axisValue struct {
	label string
	sets  []string
}

type axis struct {
	key    string
	values []axisValue
}

// Load reads a sweep file, expands it and resolves every run's config.
// Every problem (unknown keys, empty axes, invalid values, duplicate runs)
// is reported at once in a *SweepError.
func Load(path string) (*Sweep, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w (give the path of a sweep file, e.g. sweeps/toy.yaml)", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	s := &Sweep{Path: path, Name: name, OutDir: filepath.Join("runs", "sweeps", name), Raw: raw}
	var p problems
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &SweepError{Path: path, Problems: []string{"not valid YAML: " + err.Error()}}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &SweepError{Path: path, Problems: []string{"want a mapping with base: and axes: (see docs/sweeps.md)"}}
	}
	var bases []base
	var sets []string
	var axes []axis
	top := doc.Content[0]
	seenBase := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		switch k {
		case "base":
			seenBase = true
			bases = parseBases(v, &p)
		case "out_dir":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.addf("out_dir must be a folder path, got %s", describe(v))
			} else {
				s.OutDir = v.Value
			}
		case "set":
			sets = parseSets("set", v, &p)
		case "axes":
			axes = parseAxes(v, &p)
		default:
			hint := fmt.Sprintf(" (keys of a sweep file: %s)", strings.Join(sweepKeys, ", "))
			if c := config.Closest(k, sweepKeys); c != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", c)
			}
			p.addf("unknown key %q%s", k, hint)
		}
	}
	if !seenBase {
		p.addf("base: missing: name a config under configs/ (base: glow_cifar10), a path, or a list of them")
	}
	for _, a := range axes {
		s.AxisKeys = append(s.AxisKeys, a.key)
	}
	if len(p) == 0 {
		s.runs = expand(bases, sets, axes, &p)
	}
	if len(p) > 0 {
		return nil, &SweepError{Path: path, Problems: p}
	}
	return s, nil
}

// Runs returns the runs in index order: the cross product of the bases
// (slowest) and the axes in file order, the last axis fastest.
func (s *Sweep) Runs() []Run { return s.runs }

// Run returns the run with the given index.
func (s *Sweep) Run(index int) (Run, error) {
	if index < 0 || index >= len(s.runs) {
		return Run{}, fmt.Errorf("-index %d is out of range: sweep %s has %d runs (indices 0 to %d; `sweep plan %s` lists them)",
			index, s.Path, len(s.runs), len(s.runs)-1, s.Path)
	}
	return s.runs[index], nil
}

// Dir is the folder of run r: OutDir/ID.
func (s *Sweep) Dir(r Run) string { return filepath.Join(s.OutDir, r.ID) }

type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

// parseBases reads base: a name, a list of names, or a list of
// {config: NAME, set: [key=value, ...]}.
func parseBases(v *yaml.Node, p *problems) []base {
	one := func(n *yaml.Node, where string) (base, bool) {
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Value == "" {
				break
			}
			return base{config: n.Value}, true
		case yaml.MappingNode:
			var b base
			for i := 0; i+1 < len(n.Content); i += 2 {
				switch k := n.Content[i].Value; k {
				case "config":
					b.config = n.Content[i+1].Value
				case "set":
					b.set = parseSets(where+".set", n.Content[i+1], p)
				default:
					p.addf("%s: unknown key %q (a base entry has config: and set:)", where, k)
				}
			}
			if b.config == "" {
				p.addf("%s: config: missing (the config name or path of this base)", where)
				return b, false
			}
			return b, true
		}
		p.addf("%s must be a config name or path, or {config: NAME, set: [...]}, got %s", where, describe(n))
		return base{}, false
	}
	if v.Kind == yaml.SequenceNode {
		if len(v.Content) == 0 {
			p.addf("base: the list is empty: name at least one config")
		}
		var out []base
		for i, n := range v.Content {
			if b, ok := one(n, fmt.Sprintf("base[%d]", i)); ok {
				out = append(out, b)
			}
		}
		return out
	}
	if b, ok := one(v, "base"); ok {
		return []base{b}
	}
	return nil
}

// parseSets reads a list of "key=value" strings and checks their keys.
func parseSets(where string, v *yaml.Node, p *problems) []string {
	if v.Kind != yaml.SequenceNode {
		p.addf("%s must be a list of key=value overrides, e.g. [run.threads=1], got %s", where, describe(v))
		return nil
	}
	var out []string
	for i, n := range v.Content {
		key, _, ok := strings.Cut(n.Value, "=")
		if n.Kind != yaml.ScalarNode || !ok {
			p.addf("%s[%d]: want key=value, e.g. run.threads=1, got %s", where, i, describe(n))
			continue
		}
		if err := config.CheckKey(key); err != nil {
			p.addf("%s[%d]: %v", where, i, err)
			continue
		}
		out = append(out, n.Value)
	}
	return out
}

// parseAxes reads axes: an ordered mapping of key -> list of values.
func parseAxes(v *yaml.Node, p *problems) []axis {
	if v.Kind != yaml.MappingNode {
		p.addf("axes must be a mapping of config keys to lists of values, got %s", describe(v))
		return nil
	}
	var out []axis
	for i := 0; i+1 < len(v.Content); i += 2 {
		key, list := v.Content[i].Value, v.Content[i+1]
		where := "axes." + key
		if list.Kind != yaml.SequenceNode {
			p.addf("%s must be a list of values, e.g. [0, 1], got %s", where, describe(list))
			continue
		}
		if len(list.Content) == 0 {
			p.addf("%s is empty: give it at least one value, or remove it", where)
			continue
		}
		if !config.IsSection(key) {
			if err := config.CheckKey(key); err != nil {
				p.addf("%s: %v", where, err)
				continue
			}
		}
		a := axis{key: key}
		for j, n := range list.Content {
			var sets []string
			before := len(*p)
			flattenValue(key, n, &sets, fmt.Sprintf("%s[%d]", where, j), p)
			if len(*p) > before {
				continue
			}
			a.values = append(a.values, axisValue{label: label(key, sets), sets: sets})
		}
		out = append(out, a)
	}
	return out
}

// flattenValue turns the value of key into key=value overrides: a mapping
// sets the keys under key, in file order; a list is one value ([0.9,
// 0.99]).
func flattenValue(key string, n *yaml.Node, out *[]string, where string, p *problems) {
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			p.addf("%s is an empty mapping: give it at least one key", where)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			flattenValue(key+"."+n.Content[i].Value, n.Content[i+1], out, where, p)
		}
	case yaml.ScalarNode, yaml.SequenceNode:
		if err := config.CheckKey(key); err != nil {
			p.addf("%s: %v", where, err)
			return
		}
		*out = append(*out, key+"="+valueText(n))
	default:
		p.addf("%s: YAML aliases are not supported; write the value out", where)
	}
}

// valueText renders a scalar or a list so that config's --set parsing
// reads it back with its type: quoted strings stay strings.
func valueText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return n.Value
	}
	c := *n
	c.Style = yaml.FlowStyle
	if n.Kind == yaml.ScalarNode {
		c.Style = yaml.DoubleQuotedStyle
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return n.Value
	}
	return strings.TrimSpace(string(b))
}

// label is how an axis value reads in the manifest: the value for a leaf
// axis ("0"), the keys under the axis otherwise ("kind=blur,fraction=0.3").
func label(key string, sets []string) string {
	if len(sets) == 1 && strings.HasPrefix(sets[0], key+"=") {
		return strings.TrimPrefix(sets[0], key+"=")
	}
	parts := make([]string, len(sets))
	for i, s := range sets {
		parts[i] = strings.TrimPrefix(s, key+".")
	}
	return strings.Join(parts, ",")
}

// expand builds the cross product and resolves each run, collecting every
// problem: invalid configs (each message once, with the runs it hits) and
// duplicate runs.
func expand(bases []base, sets []string, axes []axis, p *problems) []Run {
	var runs []Run
	var walk func(b base, depth int, overrides []string, labels map[string]string)
	walk = func(b base, depth int, overrides []string, labels map[string]string) {
		if depth == len(axes) {
			l := make(map[string]string, len(labels))
			for k, v := range labels {
				l[k] = v
			}
			runs = append(runs, Run{Index: len(runs), Base: b.config, Overrides: append([]string(nil), overrides...), Labels: l})
			return
		}
		a := axes[depth]
		for _, v := range a.values {
			labels[a.key] = v.label
			walk(b, depth+1, append(overrides[:len(overrides):len(overrides)], v.sets...), labels)
		}
		delete(labels, a.key)
	}
	for _, b := range bases {
		walk(b, 0, append(append([]string(nil), sets...), b.set...), map[string]string{})
	}

	badBase := map[string]bool{}
	for _, b := range bases {
		if _, err := config.Load(b.config, nil); err != nil && !isValidation(err) {
			if !badBase[b.config] {
				p.addf("base %s: %v", b.config, err)
			}
			badBase[b.config] = true
		}
	}
	var order []string
	hits := map[string][]int{}
	byID := map[string]int{}
	for i := range runs {
		r := &runs[i]
		if badBase[r.Base] {
			continue
		}
		c, err := config.Load(r.Base, r.Overrides)
		if err != nil {
			msgs := []string{err.Error()}
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				msgs = ve.Problems
			}
			for _, m := range msgs {
				if _, ok := hits[m]; !ok {
					order = append(order, m)
				}
				hits[m] = append(hits[m], r.Index)
			}
			continue
		}
		if r.ID, err = RunID(c); err != nil {
			p.addf("run %d: %v", r.Index, err)
			continue
		}
		r.Config = c
		if j, dup := byID[r.ID]; dup {
			p.addf("runs %d (%s) and %d (%s) are the same run (id %s): remove the duplicate value, or make the values differ in a key that changes results",
				j, runs[j].describe(), r.Index, r.describe(), r.ID)
			continue
		}
		byID[r.ID] = r.Index
	}
	for _, m := range order {
		p.addf("%s (%s)", m, runList(hits[m], runs))
	}
	return runs
}

func isValidation(err error) bool {
	var ve *config.ValidationError
	return errors.As(err, &ve)
}

// describe names a run by its base and labels, for messages.
func (r Run) describe() string {
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{"base " + r.Base}
	for _, k := range keys {
		parts = append(parts, k+": "+r.Labels[k])
	}
	return strings.Join(parts, ", ")
}

func runList(idx []int, runs []Run) string {
	if len(idx) == 1 {
		return fmt.Sprintf("run %d: %s", idx[0], runs[idx[0]].describe())
	}
	s := make([]string, len(idx))
	for i, x := range idx {
		s[i] = strconv.Itoa(x)
	}
	return "runs " + strings.Join(s, ", ")
}

// ManifestEntry is one line of manifest.jsonl.
type ManifestEntry struct {
	Index     int               `json:"index"`
	ID        string            `json:"id"`
	Dir       string            `json:"dir"` // relative to the sweep folder
	Base      string            `json:"base"`
	Overrides []string          `json:"overrides"`
	Labels    map[string]string `json:"labels"`
}

// Manifest renders manifest.jsonl.
func (s *Sweep) Manifest() []byte {
	var buf bytes.Buffer
	for _, r := range s.runs {
		b, _ := json.Marshal(ManifestEntry{Index: r.Index, ID: r.ID, Dir: r.ID, Base: r.Base, Overrides: r.Overrides, Labels: r.Labels})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// WriteManifest writes sweep.yaml and manifest.jsonl into OutDir, each
// atomically and only if it changed, so that concurrent workers of one
// sweep (array tasks) can all call it.
func (s *Sweep) WriteManifest() error {
	if err := os.MkdirAll(s.OutDir, 0o755); err != nil {
		return fmt.Errorf("sweep: creating %s: %w", s.OutDir, err)
	}
	if err := writeIfChanged(filepath.Join(s.OutDir, SweepCopyName), s.Raw); err != nil {
		return err
	}
	return writeIfChanged(filepath.Join(s.OutDir, ManifestName), s.Manifest())
}

// ReadManifest reads the manifest.jsonl of a sweep folder; it reports
// every unreadable line at once.
func ReadManifest(sweepDir string) ([]ManifestEntry, error) {
	out, _, err := ReadManifestLines(sweepDir)
	return out, err
}

// ReadManifestLines is ReadManifest with each entry's line in the file,
// for messages about the entries.
func ReadManifestLines(sweepDir string) ([]ManifestEntry, []int, error) {
	path := filepath.Join(sweepDir, ManifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sweep: %w (is %s a sweep folder? `sweep run FILE` writes it)", err, sweepDir)
	}
	var out []ManifestEntry
	var lines []int
	var errs []error
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e ManifestEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			errs = append(errs, fmt.Errorf("sweep: %s line %d: %w", path, i+1, err))
			continue
		}
		out = append(out, e)
		lines = append(lines, i+1)
	}
	return out, lines, errors.Join(errs...)
}

func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes b to path through a temporary file renamed over
// it, so a reader never sees half a file.
func WriteFileAtomic(path string, b []byte) error {
	if err := renameio.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
