package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeConfig writes a YAML file into a temporary folder and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const imageConfig = `
run: {name: glow_test, iterations: 1000}
data: {dataset: cifar10, image_size: 32, channels: 3, batch_size: 64, range: signed, dequantization: none}
model: {name: glow}
optim: {name: adamax, lr: 3.0e-4}
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // YAML body; "" loads the embedded default
		path string // used instead of file when set
		sets []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{
			name: "unknown key in file",
			file: "optim:\n  lrr: 0.1\n",
			want: []string{`unknown key "optim.lrr"`, `did you mean "optim.lr"?`},
		},
		{
			name: "unknown top-level section",
			file: "optimizer:\n  lr: 0.1\n",
			want: []string{`unknown key "optimizer"`, `did you mean "optim"?`},
		},
		{
			name: "unknown nested key",
			file: "model:\n  realnvp2d:\n    hiden_units: 8\n",
			want: []string{`unknown key "model.realnvp2d.hiden_units"`, `"model.realnvp2d.hidden_units"`},
		},
		{
			name: "section given a value",
			file: "optim: 0.1\n",
			want: []string{`key "optim" is a section`},
		},
		{
			name: "unknown key in --set",
			sets: []string{"optim.lrr=0.1"},
			want: []string{`--set "optim.lrr=0.1": unknown key "optim.lrr"`, `did you mean "optim.lr"?`},
		},
		{
			name: "--set without value",
			sets: []string{"optim.lr"},
			want: []string{`want key=value`},
		},
		{
			name: "unknown env override",
			env:  map[string]string{"MOLLIFY_OPTIM_LRR": "0.1"},
			want: []string{"MOLLIFY_OPTIM_LRR matches no config key", "did you mean MOLLIFY_OPTIM_LR?"},
		},
		{
			name: "unknown schedule",
			file: "mollification: {schedule: sigmod}\n",
			want: []string{`mollification.schedule: unknown value "sigmod" (want "sigmoid", "cosine" or "linear")`},
		},
		{
			name: "unknown kind",
			sets: []string{"mollification.kind=gauss"},
			want: []string{`mollification.kind: unknown value "gauss"`},
		},
		{
			name: "negative lr",
			file: "optim: {lr: -0.001}\n",
			want: []string{"optim.lr must be a finite number > 0, got -0.001"},
		},
		{
			name: "negative lr from env",
			env:  map[string]string{"MOLLIFY_OPTIM_LR": "-1"},
			want: []string{"optim.lr must be a finite number > 0, got -1"},
		},
		{
			name: "fraction above 1",
			sets: []string{"mollification.fraction=1.5"},
			want: []string{"mollification.fraction must be in [0, 1], got 1.5"},
		},
		{
			name: "fraction below 0",
			file: "mollification: {fraction: -0.1}\n",
			want: []string{"mollification.fraction must be in [0, 1], got -0.1"},
		},
		{
			name: "missing file",
			path: "no_such_config",
			want: []string{`config "no_such_config" not found`, "no_such_config, configs/no_such_config, configs/no_such_config.yaml", "realnvp_mog"},
		},
		{
			name: "blur on 2-D data",
			sets: []string{"mollification.kind=blur"},
			want: []string{`mollification.kind "blur" needs image data, but data.dataset "mog" is 2-D points`},
		},
		{
			name: "image model on 2-D data",
			sets: []string{"model.name=glow"},
			want: []string{`model.name "glow" models images, but data.dataset "mog" is 2-D points`},
		},
		{
			name: "bce with Gaussian mollification",
			path: "vae_mnist",
			sets: []string{"model.vae.recon=bce"},
			want: []string{`model.vae.recon "bce" with Gaussian mollification`, "unbounded below", "use model.vae.recon=mse"},
		},
		{
			name: "cuda graph on the CPU",
			sets: []string{"run.device=cpu", "run.cuda_graph=on"},
			want: []string{"run.cuda_graph=on needs a CUDA device, but run.device is cpu", "use run.cuda_graph=auto"},
		},
		{
			name: "unknown cuda graph mode",
			sets: []string{"run.cuda_graph=yes"},
			want: []string{`run.cuda_graph: unknown value "yes" (want "auto", "on" or "off")`},
		},
		{
			name: "bad betas",
			sets: []string{"optim.betas=[0.9]"},
			want: []string{"optim.betas must be a list of 2 numbers"},
		},
		{
			name: "bad device",
			sets: []string{"run.device=gpu"},
			want: []string{`run.device: unknown device "gpu"`},
		},
		{
			name: "wrong type",
			file: "run: {iterations: many}\n",
			want: []string{"iterations"},
		},
		{
			name: "mollification iterations beyond the run",
			sets: []string{"mollification.iterations=30000"},
			want: []string{"mollification.iterations 30000 exceeds run.iterations 20000"},
		},
		{
			name: "image data without size",
			file: "data: {dataset: cifar10, channels: 3}\nmodel: {name: glow}\n",
			want: []string{`data.image_size must be > 0 for the image dataset "cifar10", got 0`},
		},
		{
			name: "VAE width not positive",
			file: "data: {dataset: mnist, image_size: 32, channels: 1}\nmodel: {name: vae, vae: {width: 0}}\n",
			want: []string{"model.vae.width must be a finite number > 0, got 0"},
		},
		{
			name: "invalid YAML",
			file: "run: [\n",
			want: []string{"not valid YAML"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			name := tc.path
			if name == "" && tc.file != "" {
				name = writeConfig(t, tc.file)
			}
			c, err := Load(name, tc.sets)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want an error containing %q", c.Optim, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Optim.LR = -1
	c.Mollification.Fraction = 2
	c.Run.Iterations = 0
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate() = %v, want a *ValidationError", err)
	}
	if len(ve.Problems) != 3 {
		t.Fatalf("got %d problems, want 3:\n%v", len(ve.Problems), err)
	}
	for _, w := range []string{"optim.lr", "mollification.fraction", "run.iterations"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

func TestDefaultIsValidAndMatchesEmbeddedDemo(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "embedded:demo.yaml" || c.Run.Name != "demo" {
		t.Errorf("Source = %q, run.name = %q, want the embedded demo config", c.Source, c.Run.Name)
	}
	c.Source, d.Source = "", ""
	c.Run.Name = d.Run.Name
	if !reflect.DeepEqual(*c, d) {
		t.Errorf("configs/demo.yaml differs from Default():\n got %+v\nwant %+v", *c, d)
	}
	mog, err := Load("realnvp_mog", nil)
	if err != nil {
		t.Fatal(err)
	}
	mog.Source = ""
	if !reflect.DeepEqual(*mog, d) {
		t.Errorf("configs/realnvp_mog.yaml differs from Default():\n got %+v\nwant %+v", *mog, d)
	}
}

// Every shipped config must load and validate, both from disk and embedded.
func TestShippedConfigsValidate(t *testing.T) {
	names := Available()
	if len(names) < 2 {
		t.Fatalf("Available() = %v, want at least realnvp_mog and realnvp_vonmises", names)
	}
	for _, n := range names {
		if _, err := Load(n, nil); err != nil {
			t.Errorf("embedded %s: %v", n, err)
		}
		c, err := Load(filepath.Join("..", ConfigDir, n+".yaml"), nil)
		if err != nil {
			t.Errorf("on disk %s: %v", n, err)
			continue
		}
		if c.Run.Name != n && n != DefaultName {
			t.Errorf("%s: run.name is %q", n, c.Run.Name)
		}
		for _, set := range [][]string{{"mollification.enabled=false"}, {"mollification.schedule=cosine"}, {"mollification.kind=blur"}} {
			if c.Data.Is2D() && set[0] == "mollification.kind=blur" {
				continue
			}
			if _, err := Load(n, set); err != nil {
				t.Errorf("%s with --set %v: %v", n, set, err)
			}
		}
	}
}

// Spot checks of appendix D.3.2 in the image configs.
func TestPaperImageHyperParameters(t *testing.T) {
	tests := []struct {
		name        string
		model, opt  string
		lr          float64
		batch, runs int
		mollified   int
	}{
		{"realnvp_cifar10", ModelRealNVP, "adam", 1e-3, 64, 100 * 781, 50 * 781},
		{"glow_cifar10", ModelGlow, "adamax", 3e-4, 64, 80 * 781, 50 * 781},
		{"glow_celeba", ModelGlow, "adamax", 3e-4, 64, 40 * 2543, 20 * 2543},
		{"iwae_cifar10", ModelIWAE, "adam", 3e-4, 128, 200 * 390, 100 * 390},
		{"nvae_cifar10", ModelNVAE, "adamax", 1e-3, 200, 300 * 250, 150 * 250},
	}
	for _, tc := range tests {
		c, err := Load(tc.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Model.Name != tc.model || c.Optim.Name != tc.opt || c.Optim.LR != tc.lr || c.Data.BatchSize != tc.batch ||
			c.Run.Iterations != tc.runs || c.Mollification.Steps(c.Run.Iterations) != tc.mollified {
			t.Errorf("%s: model %s, %s lr %g, batch %d, %d steps of which %d mollified; want %+v", tc.name, c.Model.Name,
				c.Optim.Name, c.Optim.LR, c.Data.BatchSize, c.Run.Iterations, c.Mollification.Steps(c.Run.Iterations), tc)
		}
	}
}

func TestPaperToyHyperParameters(t *testing.T) {
	for _, name := range []string{"realnvp_mog", "realnvp_vonmises"} {
		c, err := Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := c.Model.RealNVP2D
		if c.Model.Name != ModelRealNVP2D || m.Couplings != 5 || m.HiddenLayers != 2 || m.HiddenUnits != 64 ||
			c.Run.Iterations != 20000 || c.Optim.Name != "adam" || c.Optim.LR != 5e-4 || c.Data.BatchSize != 256 ||
			!c.Mollification.Enabled || c.Mollification.Kind != KindGaussian || c.Mollification.Schedule != ScheduleSigmoid ||
			c.Mollification.Sigmoid.Tau != 0.7 {
			t.Errorf("%s does not match appendix D.3.1: %+v", name, c)
		}
	}
	c, err := Load("realnvp_vonmises", []string{"mollification.enabled=false"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mollification.Enabled || c.Mollification.Steps(c.Run.Iterations) != 0 || c.Data.Dataset != DatasetVonMises {
		t.Errorf("vanilla switch: %+v", c.Mollification)
	}
}

func TestPrecedenceFileEnvSet(t *testing.T) {
	p := writeConfig(t, "optim: {lr: 0.01, weight_decay: 0.5}\nrun: {seed: 3}\n")
	c, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Optim.LR != 0.01 || c.Run.Seed != 3 || c.Optim.Eps != 1e-8 {
		t.Errorf("file over defaults: lr=%g seed=%d eps=%g", c.Optim.LR, c.Run.Seed, c.Optim.Eps)
	}

	t.Setenv("MOLLIFY_OPTIM_LR", "0.002")
	t.Setenv("MOLLIFY_OPTIM_BETAS", "0.5,0.9")
	t.Setenv("MOLLIFY_MOLLIFICATION_SIGMOID_TAU", "0.3")
	t.Setenv("MOLLIFY_UNRELATED_THING", "ignored") // not a section: left alone
	c, err = Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Optim.LR != 0.002 || !reflect.DeepEqual(c.Optim.Betas, []float64{0.5, 0.9}) || c.Mollification.Sigmoid.Tau != 0.3 {
		t.Errorf("env over file: lr=%g betas=%v tau=%g", c.Optim.LR, c.Optim.Betas, c.Mollification.Sigmoid.Tau)
	}
	if c.Optim.WeightDecay != 0.5 {
		t.Errorf("weight_decay from the file lost: %g", c.Optim.WeightDecay)
	}

	c, err = Load(p, []string{"optim.lr=3e-4", "optim.betas=[0.8, 0.99]", "mollification.enabled=false", "run.name=x y", "eval.fid_stats="})
	if err != nil {
		t.Fatal(err)
	}
	if c.Optim.LR != 3e-4 || !reflect.DeepEqual(c.Optim.Betas, []float64{0.8, 0.99}) || c.Mollification.Enabled || c.Run.Name != "x y" {
		t.Errorf("--set over env: lr=%g betas=%v enabled=%v name=%q", c.Optim.LR, c.Optim.Betas, c.Mollification.Enabled, c.Run.Name)
	}
}

func TestLoadFindsConfigsFolderBeforeEmbedded(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ConfigDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigDir, "realnvp_mog.yaml"), []byte("optim: {lr: 0.123}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, name := range []string{"realnvp_mog", "realnvp_mog.yaml", "configs/realnvp_mog.yaml"} {
		c, err := Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Optim.LR != 0.123 || c.Source != filepath.Join(ConfigDir, "realnvp_mog.yaml") {
			t.Errorf("Load(%q): lr=%g source=%q, want the on-disk file", name, c.Optim.LR, c.Source)
		}
	}
	c, err := Load("realnvp_vonmises", nil) // not on disk here: embedded
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "embedded:realnvp_vonmises.yaml" {
		t.Errorf("Source = %q", c.Source)
	}
}

func TestSaveRoundTrip(t *testing.T) {
	c, err := Load("realnvp_mog", []string{"optim.lr=1e-3", "mollification.schedule=cosine", "mollification.iterations=1234"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run-1")
	path, err := c.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, ResolvedName) {
		t.Errorf("Save wrote %s", path)
	}
	back, err := Load(path, nil)
	if err != nil {
		t.Fatalf("reloading the resolved config: %v", err)
	}
	if back.Source != path {
		t.Errorf("Source = %q", back.Source)
	}
	back.Source = c.Source
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back, c)
	}
	b, _ := os.ReadFile(path)
	for _, w := range []string{"# mollify resolved config (source: embedded:realnvp_mog.yaml)", "lr: 0.001", "betas: [0.9, 0.999]", "schedule: cosine"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("resolved YAML lacks %q:\n%s", w, b)
		}
	}
}

func TestMollificationSteps(t *testing.T) {
	tests := []struct {
		m    Mollification
		run  int
		want int
	}{
		{Mollification{Enabled: true, Fraction: 0.5}, 20000, 10000},
		{Mollification{Enabled: true, Fraction: 0.6, Iterations: 30000}, 50000, 30000},
		{Mollification{Enabled: true, Fraction: 1}, 7, 7},
		{Mollification{Enabled: true, Fraction: 1.0 / 3}, 10, 3},
		{Mollification{Enabled: false, Fraction: 0.5}, 100, 0},
	}
	for _, tc := range tests {
		if got := tc.m.Steps(tc.run); got != tc.want {
			t.Errorf("%+v.Steps(%d) = %d, want %d", tc.m, tc.run, got, tc.want)
		}
	}
}

func TestDataShape(t *testing.T) {
	d := Default().Data
	if !reflect.DeepEqual(d.Shape(), []int64{2}) {
		t.Errorf("2-D shape %v", d.Shape())
	}
	d = Data{Dataset: DatasetCIFAR10, ImageSize: 32, Channels: 3}
	if !reflect.DeepEqual(d.Shape(), []int64{3, 32, 32}) {
		t.Errorf("image shape %v", d.Shape())
	}
}

func TestImageConfigLoads(t *testing.T) {
	c, err := Load(writeConfig(t, imageConfig), []string{"mollification.kind=blur"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mollification.Kind != KindBlur || c.Data.Is2D() {
		t.Errorf("%+v", c.Mollification)
	}
}

// run.tensorboard is on unless turned off, survives the resolved copy
// (so a resumed run keeps it), and a wrong value or a typo names the key.
func TestTensorBoardKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want bool
	}{
		{"default", nil, true},
		{"off", []string{"run.tensorboard=false"}, false},
		{"on", []string{"run.tensorboard=true"}, true},
	} {
		c, err := Load("glow_cifar10", tc.sets)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		path, err := c.Save(filepath.Join(t.TempDir(), "run"))
		if err != nil {
			t.Fatal(err)
		}
		back, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Run.TensorBoard != tc.want || back.Run.TensorBoard != tc.want {
			t.Errorf("%s: run.tensorboard %v, reloaded %v, want %v", tc.name, c.Run.TensorBoard, back.Run.TensorBoard, tc.want)
		}
	}
	for _, tc := range []struct{ set, want string }{
		{"run.tensorboard=maybe", "'run.tensorboard' cannot parse value as 'bool'"},
		{"run.tensorbord=false", `did you mean "run.tensorboard"?`},
	} {
		if _, err := Load("", []string{tc.set}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error %v, want %q", tc.set, err, tc.want)
		}
	}
}
