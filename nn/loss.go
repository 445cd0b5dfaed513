package nn

import "github.com/sugarme/gotch/ts"

// Loss is a batch objective: Total is the scalar to minimise and Terms are
// named scalars for the metrics ("recon", "kl", "bpd"...; may be nil).
// Models return it (vaes, models) and train minimises it; the tensors
// belong to the caller's scope.
type Loss struct {
	Total *ts.Tensor
	Terms map[string]*ts.Tensor
}
