package dist

import "testing"

func TestCPPLogLevel(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int
	}{
		{"", 2}, {"INFO", 0}, {"info", 0}, {"0", 0}, {"WARNING", 1}, {" warning ", 1}, {"1", 1},
		{"ERROR", 2}, {"2", 2}, {"FATAL", 3}, {"3", 3}, {"verbose", 2},
	} {
		if got := cppLogLevel(c.env); got != c.want {
			t.Errorf("TORCH_CPP_LOG_LEVEL=%q: level %d, want %d", c.env, got, c.want)
		}
	}
}
