package config

import (
	"fmt"
	"reflect"
	"strings"
)

// CheckKey reports whether key ("optim.lr") is a settable leaf of the
// schema. Its error names the key and the closest valid one, with the
// same words as Load's, so tools that take keys from elsewhere (sweep
// files) report them alike.
func CheckKey(key string) error {
	return schemaOf(reflect.TypeOf(Config{})).checkKey(strings.ToLower(strings.TrimSpace(key)))
}

// IsSection reports whether key ("mollification") is a section of the
// schema, whose keys are set one by one.
func IsSection(key string) bool {
	return schemaOf(reflect.TypeOf(Config{})).sections[strings.ToLower(strings.TrimSpace(key))]
}

// Closest returns the candidate nearest to name (edit distance below 3,
// or a prefix of at least 3 letters either way), or "" if none is close.
func Closest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(name, c)
		if len(c) >= 3 && len(name) >= 3 && (strings.HasPrefix(name, c) || strings.HasPrefix(c, name)) {
			d = min(d, 2) // "optimizer" for "optim"
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func (s *schema) checkKey(key string) error {
	if s.leaves[key] {
		return nil
	}
	if s.sections[key] {
		return fmt.Errorf("%q is a section; set one of its keys (%s)", key, strings.Join(s.children[key], ", "))
	}
	prefix, name := "", key
	if i := strings.LastIndex(key, "."); i >= 0 {
		prefix, name = key[:i], key[i+1:]
	}
	hint := ""
	switch {
	case s.sections[prefix]:
		hint = s.suggest(prefix, name)
	case s.leaves[prefix]:
		hint = fmt.Sprintf(" (%q is a value, not a section)", prefix)
	}
	return fmt.Errorf("unknown key %q%s", key, hint)
}
