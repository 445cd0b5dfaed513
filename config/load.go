package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/mollify/mollify/configs"
)

// DefaultName is the config Load reads when given an empty name:
// configs/demo.yaml (embedded), the `make demo` run, which is Default()
// under the run name "demo".
const DefaultName = "demo"

// EnvPrefix starts the environment variables that override keys:
// MOLLIFY_OPTIM_LR overrides optim.lr.
const EnvPrefix = "MOLLIFY"

// ConfigDir is where Load looks for a config given by name, relative to
// the working directory, before falling back to the embedded copies.
const ConfigDir = "configs"

// Load reads a config and validates it. name is a path to a YAML file, or
// NAME for configs/NAME or configs/NAME.yaml (on disk under the working
// directory, else embedded in the binary); "" means DefaultName. sets are
// "key=value" overrides applied last. Environment variables MOLLIFY_* (see
// package doc) apply between the file and sets.
func Load(name string, sets []string) (*Config, error) {
	source, raw, err := find(name)
	if err != nil {
		return nil, err
	}
	c, err := parse(source, raw, sets)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}
	return c, nil
}

// Available lists the config names Load can find without a path: those
// under ./configs and those embedded, sorted, without ".yaml".
func Available() []string {
	seen := map[string]bool{}
	add := func(names []string) {
		for _, n := range names {
			if strings.HasSuffix(n, ".yaml") {
				seen[strings.TrimSuffix(filepath.Base(n), ".yaml")] = true
			}
		}
	}
	if m, err := filepath.Glob(filepath.Join(ConfigDir, "*.yaml")); err == nil {
		add(m)
	}
	if m, err := fs.Glob(configs.FS, "*.yaml"); err == nil {
		add(m)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// find returns a description of where the config came from and its bytes.
func find(name string) (string, []byte, error) {
	if name == "" {
		name = DefaultName
	}
	var tried []string
	candidates := []string{name}
	if !filepath.IsAbs(name) {
		candidates = append(candidates, filepath.Join(ConfigDir, name))
		if !strings.HasSuffix(name, ".yaml") {
			candidates = append(candidates, filepath.Join(ConfigDir, name+".yaml"))
		}
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err == nil {
			return p, b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("config %q: %w", p, err)
		}
		if seen(tried, p) {
			continue
		}
		tried = append(tried, p)
	}
	// The embedded copies, by base name.
	base := strings.TrimPrefix(filepath.ToSlash(name), ConfigDir+"/")
	if !strings.Contains(base, "/") {
		for _, p := range []string{base, base + ".yaml"} {
			if b, err := fs.ReadFile(configs.FS, p); err == nil {
				return "embedded:" + p, b, nil
			}
		}
	}
	wd, _ := os.Getwd()
	return "", nil, fmt.Errorf("config %q not found: looked for %s (relative to %s) and among the embedded configs (%s); pass a path to a YAML file or one of those names",
		name, strings.Join(tried, ", "), wd, strings.Join(Available(), ", "))
}

func seen(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// parse layers defaults, the YAML bytes, the environment and sets, and
// decodes the result exactly (an unknown key is an error).
func parse(source string, raw []byte, sets []string) (*Config, error) {
	sch := schemaOf(reflect.TypeOf(Config{}))

	var file map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("config %s: not valid YAML: %w", source, err)
	}
	if err := sch.checkTree(file, ""); err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}

	v := viper.New()
	v.SetConfigType("yaml")
	defaults := map[string]any{}
	flatten(reflect.ValueOf(Default()), "", defaults)
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}

	if err := sch.checkEnv(os.Environ()); err != nil {
		return nil, err
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	for _, s := range sets {
		key, val, err := sch.parseSet(s)
		if err != nil {
			return nil, err
		}
		v.Set(key, val)
	}

	c := &Config{}
	if err := v.UnmarshalExact(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}
	c.Source = source
	return c, nil
}

// schema is the set of keys of Config: leaves ("optim.lr") and sections
// ("optim", "model.vae.iaf").
type schema struct {
	leaves   map[string]bool
	sections map[string]bool
	children map[string][]string // section ("" for the root) -> child names
}

func schemaOf(t reflect.Type) *schema {
	s := &schema{leaves: map[string]bool{}, sections: map[string]bool{"": true}, children: map[string][]string{}}
	s.walk(t, "")
	return s
}

func (s *schema) walk(t reflect.Type, prefix string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := join(prefix, tag)
		s.children[prefix] = append(s.children[prefix], tag)
		if f.Type.Kind() == reflect.Struct {
			s.sections[key] = true
			s.walk(f.Type, key)
		} else {
			s.leaves[key] = true
		}
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// checkTree reports the first key of a parsed YAML tree that is not in the
// schema, with the closest valid sibling.
func (s *schema) checkTree(m map[string]any, prefix string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := join(prefix, strings.ToLower(k))
		switch {
		case s.leaves[key]:
		case s.sections[key]:
			switch sub := m[k].(type) {
			case nil:
			case map[string]any:
				if err := s.checkTree(sub, key); err != nil {
					return err
				}
			default:
				return fmt.Errorf("key %q is a section (with keys %s), not a value: got %v", key, strings.Join(s.children[key], ", "), sub)
			}
		default:
			return fmt.Errorf("unknown key %q%s", key, s.suggest(prefix, strings.ToLower(k)))
		}
	}
	return nil
}

// suggest names the closest key among a section's children.
func (s *schema) suggest(prefix, name string) string {
	best := Closest(name, s.children[prefix])
	where := "the top level"
	if prefix != "" {
		where = prefix
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", join(prefix, best))
	}
	return fmt.Sprintf(" (keys of %s: %s)", where, strings.Join(s.children[prefix], ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// checkEnv rejects MOLLIFY_<SECTION>_* variables that match no key, so a
// misspelt override is not silently ignored. Other MOLLIFY_* variables are
// left to whoever uses them.
func (s *schema) checkEnv(environ []string) error {
	known := map[string]string{}
	for k := range s.leaves {
		known[envName(k)] = k
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] != "" {
			continue
		}
		for _, top := range s.children[""] {
			if strings.HasPrefix(name, envName(top)+"_") {
				best, bestD := "", 3
				for env := range known {
					if d := editDistance(name, env); d < bestD || (d == bestD && env < best) {
						best, bestD = env, d
					}
				}
				hint := ""
				if best != "" {
					hint = fmt.Sprintf(" (did you mean %s?)", best)
				}
				return fmt.Errorf("environment variable %s matches no config key%s; unset it or fix its name", name, hint)
			}
		}
	}
	return nil
}

// parseSet splits "a.b=value" and parses value as YAML, so numbers, bools
// and lists ([0.9, 0.99]) keep their types.
func (s *schema) parseSet(set string) (string, any, error) {
	k, raw, ok := strings.Cut(set, "=")
	key := strings.ToLower(strings.TrimSpace(k))
	if !ok || key == "" {
		return "", nil, fmt.Errorf("--set %q: want key=value, e.g. --set optim.lr=1e-3", set)
	}
	if err := s.checkKey(key); err != nil {
		return "", nil, fmt.Errorf("--set %q: %w", set, err)
	}
	var val any
	if err := yaml.Unmarshal([]byte(raw), &val); err != nil || val == nil {
		val = raw
	}
	return key, val, nil
}

// flatten writes the leaves of a struct value as dotted keys.
func flatten(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := join(prefix, tag)
		if f.Type.Kind() == reflect.Struct {
			flatten(v.Field(i), key, out)
			continue
		}
		out[key] = v.Field(i).Interface()
	}
}
