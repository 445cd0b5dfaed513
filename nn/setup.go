package nn

import "github.com/sugarme/gotch"

// Setup is what every program that runs a model starts with: the device,
// the thread count, the seeded generators and an empty store on the
// device. cmd/train, cmd/sample and the benchmarks make it with NewSetup,
// so that they agree on defaults.
type Setup struct {
	Device  gotch.Device
	Threads int
	RNG     *RNG
	Store   *Store
}

// NewSetup parses device ("auto", "cpu", "cuda", "cuda:N"), sets libtorch's
// threads (threads ≤ 0: DefaultThreads, i.e. $MOLLIFY_THREADS or 1), seeds
// libtorch's and Go's generators and makes an empty store. Close frees the
// store.
func NewSetup(device string, threads int, seed uint64) (*Setup, error) {
	dev, err := ParseDevice(device)
	if err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = DefaultThreads()
	}
	SetThreads(threads)
	rng, err := Seed(seed)
	if err != nil {
		return nil, err
	}
	return &Setup{Device: dev, Threads: threads, RNG: rng, Store: NewStore(dev)}, nil
}

// Close frees the store's tensors.
func (s *Setup) Close() { s.Store.Close() }
