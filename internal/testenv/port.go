package testenv

import (
	"net"
	"strconv"
	"testing"
)

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a
// test's MASTER_PORT (ranks of a test run meet there).
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
