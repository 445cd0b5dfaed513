package dist

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseHostList expands a Slurm host list (SLURM_JOB_NODELIST) into host
// names, in order: "node[01-04]" is node01..node04 (zero padding kept, from
// the width of the range's first number), "node[1,3,5-7],gpu[01-02]" mixes
// lists and ranges, "a-b[001-002]" has a dash in the prefix, and
// "r[1-2]-n[1-2]" expands each bracket in turn.
func ParseHostList(list string) ([]string, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return nil, fmt.Errorf("the Slurm host list is empty")
	}
	var hosts []string
	for _, item := range splitTop(list) {
		if item == "" {
			return nil, fmt.Errorf("the Slurm host list %q has an empty entry", list)
		}
		h, err := expandHost(item)
		if err != nil {
			return nil, fmt.Errorf("the Slurm host list %q: %w", list, err)
		}
		hosts = append(hosts, h...)
	}
	return hosts, nil
}

// splitTop splits at the commas outside brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// expandHost expands the first bracket of item and recurses on the rest.
func expandHost(item string) ([]string, error) {
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if strings.ContainsRune(item, ']') {
			return nil, fmt.Errorf("%q has a ']' without '['", item)
		}
		return []string{item}, nil
	}
	end := strings.IndexByte(item[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("%q has a '[' without ']'", item)
	}
	end += open
	prefix, body, rest := item[:open], item[open+1:end], item[end+1:]
	if strings.ContainsRune(body, '[') {
		return nil, fmt.Errorf("%q has nested brackets", item)
	}
	tails, err := expandHost(rest)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, part := range strings.Split(body, ",") {
		nums, err := expandRange(part)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		for _, n := range nums {
			for _, t := range tails {
				out = append(out, prefix+n+t)
			}
		}
	}
	return out, nil
}

// expandRange expands "5", "01-04" (keeping the width of "01").
func expandRange(part string) ([]string, error) {
	lo, hi, isRange := strings.Cut(part, "-")
	if lo == "" || (isRange && hi == "") {
		return nil, fmt.Errorf("%q is not a number or a range a-b", part)
	}
	a, err := strconv.Atoi(lo)
	if err != nil || a < 0 {
		return nil, fmt.Errorf("%q is not a number or a range a-b", part)
	}
	if !isRange {
		return []string{lo}, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil {
		return nil, fmt.Errorf("%q is not a number or a range a-b", part)
	}
	if b < a {
		return nil, fmt.Errorf("the range %q ends before it starts", part)
	}
	if b-a >= 100000 {
		return nil, fmt.Errorf("the range %q has more than 100000 hosts", part)
	}
	width := len(lo)
	out := make([]string, 0, b-a+1)
	for n := a; n <= b; n++ {
		out = append(out, fmt.Sprintf("%0*d", width, n))
	}
	return out, nil
}
