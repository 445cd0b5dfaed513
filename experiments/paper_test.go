package experiments

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
)

func mustPaperValues(t *testing.T) []PaperValue {
	t.Helper()
	vals, err := PaperValues()
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

// paperSourceLines reads paper/source_lines.txt: the paper's lines by number.
func paperSourceLines(t *testing.T) map[int]string {
	t.Helper()
	f, err := os.Open("paper/source_lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<16)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		n, text, ok := strings.Cut(sc.Text(), "\t")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("source_lines.txt: bad line %q", sc.Text())
		}
		lines[i] = text
	}
	return lines
}

// mdCells splits a Markdown table row into trimmed cells.
func mdCells(line string) []string {
	parts := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// Every value of published.csv is the one printed at its source line, in
// the column its dataset and training name (a transcription check).
func TestPublishedMatchesSourceLines(t *testing.T) {
	lines := paperSourceLines(t)
	vals := mustPaperValues(t)
	if len(vals) != 71 {
		t.Errorf("%d published values, want 71 (Table 1: 42, Table 2: 20, Table 3: 7, NVAE: 2)", len(vals))
	}
	table1 := map[string]int{"cifar10/vanilla": 1, "cifar10/gaussian": 2, "cifar10/blur": 3, "celeba/vanilla": 4, "celeba/gaussian": 5, "celeba/blur": 6}
	table2 := map[string]int{"vanilla/": 1, "gaussian/sigmoid": 2, "gaussian/cosine": 3, "gaussian/linear": 4}
	table3 := map[string]int{"vanilla": 0, "gaussian": 1, "blur": 2, "two_step_nf": 3, "two_step_ebm": 4, "two_step_avb": 5, "two_step_arm": 6}
	for _, v := range vals {
		line, ok := lines[v.SourceLine]
		if !ok {
			t.Errorf("%+v: line %d is not in source_lines.txt", v, v.SourceLine)
			continue
		}
		want := fmtValue(v.Value)
		if v.PrintedChange != "" {
			want += " " + v.PrintedChange
		}
		col, known := -1, true
		switch v.Table {
		case "1":
			col, known = table1[v.Dataset+"/"+v.Training]
		case "2":
			col, known = table2[v.Training+"/"+v.Schedule]
		case "3":
			col, known = table3[v.Training]
		case "text":
			m := regexp.MustCompile(`from (\d+\.\d+) to (\d+\.\d+)`).FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "NVAE") {
				t.Errorf("line %d does not print NVAE's \"from X to Y\"", v.SourceLine)
				continue
			}
			got := map[string]string{TrainingVanilla: m[1], TrainingGaussian: m[2]}[v.Training]
			if got != want {
				t.Errorf("NVAE %s: CSV %s, line %d prints %s", v.Training, want, v.SourceLine, got)
			}
			continue
		}
		if !known {
			t.Errorf("%+v: no column of Table %s for this training", v, v.Table)
			continue
		}
		c := mdCells(line)
		if col >= len(c) || c[col] != want {
			t.Errorf("Table %s %s %s %s: CSV %q, line %d prints %q", v.Table, v.Row, v.Dataset, trainingLabel(v.Training, v.Schedule), want, v.SourceLine, c)
		}
		if v.Table != "3" && c[0] != v.Row {
			t.Errorf("line %d: row label %q, CSV %q", v.SourceLine, c[0], v.Row)
		}
	}
}

// The published values hold exactly the inconsistencies docs/report.md
// lists; none of the printed percentages is off.
func TestPaperFlagsOnPublishedValues(t *testing.T) {
	flags := PaperFlags(mustPaperValues(t))
	want := []struct{ kind, msg string }{
		{"cross-table", "REAL-NVP cifar10 vanilla is 131.15 (Table 1, line 162) but 191.98 (Table 2, line 200)"},
		{"duplicate", "Table 2 prints 191.98 for both REAL-NVP (line 200) and VAE (line 202), cifar10 vanilla: one is probably copied from the other; Table 1, line 162 prints 131.15 for REAL-NVP"},
		{"text-vs-table", "but Table 1 prints 2 degradation(s): REAL-NVP [14] celeba blur ↑ 5.11%; HVAE [5] celeba blur ↑ 4.64%"},
	}
	if len(flags) != len(want) {
		for _, f := range flags {
			t.Logf("%s: %s", f.Kind, f.Message)
		}
		t.Fatalf("%d flags, want %d", len(flags), len(want))
	}
	for i, w := range want {
		if flags[i].Kind != w.kind || !strings.Contains(flags[i].Message, w.msg) {
			t.Errorf("flag %d: %s: %q, want %s containing %q", i, flags[i].Kind, flags[i].Message, w.kind, w.msg)
		}
	}
}

// The percentage check catches a printed change that does not follow from
// the values, in size or in direction.
func TestPaperFlagsCatchWrongPercentages(t *testing.T) {
	const header = "table,row,model,dataset,training,schedule,metric,value,printed_change,source_line\n"
	for _, c := range []struct {
		name, rows string
		want       []string // one message per flag; nil: no flag
	}{
		{"right", "1,GLOW,glow,cifar10,vanilla,,fid,74.62,,1\n1,GLOW,glow,cifar10,gaussian,sigmoid,fid,64.87,↓ 13.07%,1\n", nil},
		{"off by 0.02", "1,GLOW,glow,cifar10,vanilla,,fid,74.62,,1\n1,GLOW,glow,cifar10,gaussian,sigmoid,fid,64.87,↓ 13.09%,1\n",
			[]string{"GLOW cifar10 gaussian: 64.87 against vanilla 74.62 is ↓ 13.07%, but the paper prints ↓ 13.09%"}},
		{"wrong arrow", "1,RNVP,realnvp,celeba,vanilla,,fid,81.25,,1\n1,RNVP,realnvp,celeba,blur,,fid,85.40,↓ 5.11%,1\n",
			[]string{"is ↑ 5.11%, but the paper prints ↓ 5.11%"}},
		{"no vanilla", "1,RNVP,realnvp,celeba,blur,,fid,85.40,↑ 5.11%,1\n", []string{"has no vanilla value"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vals, err := ParsePaperValues(strings.NewReader(header + c.rows))
			if err != nil {
				t.Fatal(err)
			}
			var flags []PaperFlag
			for _, f := range PaperFlags(vals) {
				if f.Kind == "percentage" {
					flags = append(flags, f)
				}
			}
			if len(flags) != len(c.want) {
				t.Fatalf("flags %+v, want %q", flags, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(flags[i].Message, w) {
					t.Errorf("flag %q, want one containing %q", flags[i].Message, w)
				}
			}
		})
	}
}

func TestParsePaperValuesReportsEveryProblem(t *testing.T) {
	const header = "table,row,model,dataset,training,schedule,metric,value,printed_change,source_line\n"
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"no header", "1,GLOW,glow,cifar10,vanilla,,fid,74.62,,1\n", []string{"first row must be the header"}},
		{"short row", header + "1,GLOW,glow\n", []string{"wrong number of fields", "columns: table,row"}},
		{"three problems", header + "1,GLOW,glow,cifar10,gaussian,,fid,x,7%,0\n",
			[]string{`value "x" must be a positive number`, `source_line "0" must be a line number`, `printed_change "7%" must read`, "needs schedule sigmoid, cosine or linear"}},
		{"schedule on blur", header + "1,GLOW,glow,cifar10,blur,cosine,fid,66.70,,1\n", []string{`schedule "cosine" is only for training gaussian`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePaperValues(strings.NewReader(c.text))
			testenv.AssertError(t, err, c.want, nil)
		})
	}
}

func TestPaperLookup(t *testing.T) {
	vals := mustPaperValues(t)
	for _, c := range []struct {
		dataset, model, training, schedule string
		want                               float64 // 0: none
		where                              string
		other                              []float64
	}{
		{"cifar10", "realnvp", "vanilla", "", 131.15, "Table 1, line 162", []float64{191.98}},
		{"cifar10", "realnvp", "gaussian", "", 121.75, "Table 1, line 162", nil},
		{"cifar10", "realnvp", "gaussian", "sigmoid", 121.75, "Table 1, line 162", nil},
		{"cifar10", "realnvp", "gaussian", "cosine", 118.71, "Table 2, line 200", nil},
		{"cifar10", "glow", "gaussian", "linear", 74.36, "Table 2, line 201", nil},
		{"cifar10", "vae", "blur", "cosine", 175.40, "Table 1, line 164", nil}, // blur ignores the schedule
		{"celeba", "hvae", "blur", "", 77.54, "Table 1, line 168", nil},
		{"cifar10", "nvae", "gaussian", "", 52.26, "text, line 182", nil},
		{"cifar10", "vae_iaf", "gaussian", "cosine", 0, "", nil}, // not in Table 2
		{"mnist", "glow", "vanilla", "", 0, "", nil},
	} {
		v, other, ok := PaperLookup(vals, "fid", c.dataset, c.model, c.training, c.schedule)
		if ok != (c.want != 0) || v.Value != c.want || (ok && v.Where() != c.where) {
			t.Errorf("%s %s %s %s: %v %s (found %v), want %v %s", c.dataset, c.model, c.training, c.schedule, v.Value, v.Where(), ok, c.want, c.where)
		}
		var got []float64
		for _, o := range other {
			got = append(got, o.Value)
		}
		if len(got) != len(c.other) || (len(got) > 0 && got[0] != c.other[0]) {
			t.Errorf("%s %s %s: other printings %v, want %v", c.dataset, c.model, c.training, got, c.other)
		}
	}
	if _, _, ok := PaperLookup(vals, "fcd", "cifar10", "glow", "vanilla", ""); ok {
		t.Error("the paper has no FCD values, but the lookup found one")
	}
}

func TestFormatChange(t *testing.T) {
	for _, c := range []struct {
		value, vanilla float64
		want           string
	}{
		{121.75, 131.15, "↓ 7.17%"},
		{85.40, 81.25, "↑ 5.11%"},
		{70.91, 97.59, "↓ 27.34%"},
		{100, 100, "0.00%"},
		{100.001, 100, "0.00%"},
	} {
		if got := FormatChange(ChangePercent(c.value, c.vanilla)); got != c.want {
			t.Errorf("%v vs %v: %q, want %q", c.value, c.vanilla, got, c.want)
		}
	}
}
