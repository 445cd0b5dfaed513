// Package nn is placeholder.
package nn

import _ "github.com/sugarme/gotch/ts"
