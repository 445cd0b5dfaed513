package sweep

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
)

// cmd/sweep must build where libtorch is not installed (a cluster's login
// node writes the sbatch script there): neither it nor this package may
// depend on cgo.
func TestSweepCommandNeedsNoLibtorch(t *testing.T) {
	testenv.NeedGoTool(t)
	for _, pkg := range []string{".", "../../cmd/sweep"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{if .CgoFiles}}cgo{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasSuffix(line, " cgo") && !strings.HasPrefix(line, "runtime/cgo") && !strings.HasPrefix(line, "net ") && !strings.HasPrefix(line, "os/user ") {
				t.Errorf("%s depends on %s, which uses cgo", pkg, strings.TrimSuffix(line, " cgo"))
			}
		}
	}
}
