package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// LoaderConfig says how a Loader batches a Dataset.
type LoaderConfig struct {
	BatchSize int
	// DropLast drops the last partial batch of each epoch, so every batch
	// has BatchSize rows; when false the last batch of an epoch is served
	// short (N mod BatchSize rows).
	DropLast bool
	// Shuffle draws a fresh permutation each epoch from (Seed, epoch);
	// without it every epoch is in dataset order.
	Shuffle bool
	// HFlip mirrors each image left-right with probability 1/2, drawn from
	// (Seed, epoch, batch), so a batch is the same however it is reached.
	HFlip bool
	Seed  uint64
	// Rank and World shard each batch for data-parallel training: the
	// rank serves its contiguous slice of BatchSize/World rows of every
	// (global) batch, rows Rank·BatchSize/World onwards, from the same
	// epoch order; flips are drawn for the whole batch, so a row is
	// flipped alike whatever the world size. World 0 or 1: no sharding.
	Rank, World int
	// Prefetch is how many batches the producer goroutine keeps ready
	// (2 by default).
	Prefetch int
}

// Loader serves shuffled batches of a Dataset. The batch at (epoch,
// index) is a function of the config and the dataset alone, so a run
// resumed at a step sees exactly the batches it would have seen.
type Loader struct {
	ds       Dataset
	cfg      LoaderConfig
	perEpoch int
	c, h, w  int
}

// NewLoader validates the config.
func NewLoader(ds Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, errors.New("data: NewLoader needs a non-empty dataset")
	}
	n := ds.Len()
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("data: batch size must be positive, got %d", cfg.BatchSize)
	}
	per := n / cfg.BatchSize
	if !cfg.DropLast && n%cfg.BatchSize != 0 {
		per++
	}
	if per == 0 {
		return nil, fmt.Errorf("data: batch size %d is larger than the %d examples and drop_last drops it: no batches", cfg.BatchSize, n)
	}
	if err := checkShard(n, cfg.BatchSize, cfg.DropLast, cfg.Rank, cfg.World); err != nil {
		return nil, err
	}
	if cfg.World == 0 {
		cfg.World = 1
	}
	if cfg.Prefetch < 0 {
		return nil, fmt.Errorf("data: prefetch must be >= 0, got %d", cfg.Prefetch)
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 2
	}
	c, h, w := ds.Shape()
	return &Loader{ds: ds, cfg: cfg, perEpoch: per, c: c, h: h, w: w}, nil
}

// checkShard says whether n examples in batches of batch rows split
// evenly over world ranks; errors name the keys to change.
func checkShard(n, batch int, dropLast bool, rank, world int) error {
	if world == 0 && rank == 0 {
		return nil
	}
	if world < 1 || rank < 0 || rank >= world {
		return fmt.Errorf("data: rank %d of a world of %d processes (want 0 <= rank < world)", rank, world)
	}
	if batch%world != 0 {
		return fmt.Errorf("data: data.batch_size %d (the global batch) does not split over %d processes: make it a multiple of %d", batch, world, world)
	}
	if short := n % batch; !dropLast && short != 0 && short%world != 0 {
		return fmt.Errorf("data: each epoch ends with a partial batch of %d rows (%d examples, data.batch_size %d), which does not split over %d processes: set data.drop_last=true or make data.batch_size divide the examples", short, n, batch, world)
	}
	return nil
}

// BatchesPerEpoch is the number of batches in one pass over the data.
func (l *Loader) BatchesPerEpoch() int { return l.perEpoch }

// Config returns the loader's config (with defaults filled in).
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Position maps a 0-based global batch index (a training step) to its
// epoch and its index within the epoch.
func (l *Loader) Position(step int) (epoch, index int) {
	return step / l.perEpoch, step % l.perEpoch
}

// Order is the order in which an epoch visits the examples.
func (l *Loader) Order(epoch int) []int32 {
	n := l.ds.Len()
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	if l.cfg.Shuffle {
		r := rand.New(rand.NewPCG(l.cfg.Seed, 0x70657270+uint64(epoch))) // "perp"+epoch
		r.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

// Batch is one batch on the host.
type Batch struct {
	Pixels []uint8 // N·C·H·W bytes, NCHW, values 0..255
	Shape  [4]int  // N, C, H, W
	Labels []int32 // N class labels; nil for an unlabelled dataset
	Epoch  int
	Index  int // index within the epoch
	// Offset is the first row's index in the global batch and Total the
	// global batch's rows (Offset 0 and Total N without sharding): noise
	// drawn for the batch (dequantisation) is drawn for Total rows and
	// sliced, so it does not depend on the world size.
	Offset, Total int
	// Wait is how long Next blocked waiting for the producer: the
	// "data_wait" of the step. Near zero when prefetching keeps up.
	Wait time.Duration

	pool chan []uint8
}

// Len is the number of examples in the batch.
func (b *Batch) Len() int { return b.Shape[0] }

// Release hands the pixel buffer back for reuse; b must not be used after.
func (b *Batch) Release() {
	if b == nil || b.pool == nil {
		return
	}
	select {
	case b.pool <- b.Pixels[:cap(b.Pixels)]:
	default:
	}
	b.Pixels, b.pool = nil, nil
}

// fill builds the batch at (epoch, index) given the epoch's order.
func (l *Loader) fill(b *Batch, order []int32, epoch, index int) {
	n := l.ds.Len()
	lo := index * l.cfg.BatchSize
	hi := min(lo+l.cfg.BatchSize, n)
	total := hi - lo
	rows := total / l.cfg.World
	first := l.cfg.Rank * rows // this rank's first row in the global batch
	d := l.c * l.h * l.w
	b.Pixels = b.Pixels[:rows*d]
	b.Shape = [4]int{rows, l.c, l.h, l.w}
	b.Epoch, b.Index = epoch, index
	b.Offset, b.Total = first, total
	var flips *rand.Rand
	if l.cfg.HFlip {
		flips = rand.New(rand.NewPCG(l.cfg.Seed^0x666c6970, uint64(epoch)<<32|uint64(uint32(index)))) // "flip"
		for r := 0; r < first; r++ {
			flips.Uint64() // the rows of the ranks before this one
		}
	}
	b.Labels = b.Labels[:0]
	labelled := true
	for r := 0; r < rows; r++ {
		src, label := l.ds.Example(int(order[lo+first+r]))
		dst := b.Pixels[r*d : (r+1)*d]
		if flips != nil && flips.Uint64()&1 == 1 {
			flipRows(dst, src, l.w)
		} else {
			copy(dst, src)
		}
		if label < 0 {
			labelled = false
		}
		b.Labels = append(b.Labels, int32(label))
	}
	if !labelled {
		b.Labels = nil
	}
}

// flipRows copies src to dst mirroring each row of width w.
func flipRows(dst, src []uint8, w int) {
	for o := 0; o < len(src); o += w {
		s, t := src[o:o+w], dst[o:o+w]
		for x := 0; x < w; x++ {
			t[x] = s[w-1-x]
		}
	}
}

// BatchAt builds the batch at (epoch, index) synchronously, without the
// producer goroutine (for evaluation and tests).
func (l *Loader) BatchAt(epoch, index int) (*Batch, error) {
	if epoch < 0 || index < 0 || index >= l.perEpoch {
		return nil, fmt.Errorf("data: batch (epoch %d, index %d) out of range: %d batches per epoch", epoch, index, l.perEpoch)
	}
	b := &Batch{Pixels: make([]uint8, l.cfg.BatchSize*l.c*l.h*l.w)}
	l.fill(b, l.Order(epoch), epoch, index)
	return b, nil
}

// Iterator yields the batches from a starting position onwards, across
// epochs, built ahead by a producer goroutine.
type Iterator struct {
	out  chan *Batch
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start starts a producer at batch index of epoch (index 0 is the start
// of the epoch; exact resume passes the position of the next step). Close
// the iterator when done.
func (l *Loader) Start(epoch, index int) (*Iterator, error) {
	if epoch < 0 || index < 0 || index >= l.perEpoch {
		return nil, fmt.Errorf("data: start (epoch %d, index %d) out of range: %d batches per epoch", epoch, index, l.perEpoch)
	}
	it := &Iterator{out: make(chan *Batch, l.cfg.Prefetch-1), done: make(chan struct{})}
	pool := make(chan []uint8, l.cfg.Prefetch+2)
	size := l.cfg.BatchSize * l.c * l.h * l.w
	it.wg.Add(1)
	go func() {
		defer it.wg.Done()
		defer close(it.out)
		order := l.Order(epoch)
		for {
			var buf []uint8
			select {
			case buf = <-pool:
			default:
				buf = make([]uint8, size)
			}
			b := &Batch{Pixels: buf, pool: pool}
			l.fill(b, order, epoch, index)
			select {
			case it.out <- b:
			case <-it.done:
				return
			}
			if index++; index == l.perEpoch {
				epoch, index = epoch+1, 0
				order = l.Order(epoch)
			}
		}
	}()
	return it, nil
}

// Next returns the next batch, recording in Batch.Wait how long it
// waited for it.
func (it *Iterator) Next() (*Batch, error) {
	start := time.Now()
	b, ok := <-it.out
	if !ok {
		return nil, errors.New("data: Next on a closed iterator")
	}
	b.Wait = time.Since(start)
	return b, nil
}

// Close stops the producer and waits for it to exit.
func (it *Iterator) Close() {
	it.once.Do(func() {
		close(it.done)
		for range it.out {
		}
		it.wg.Wait()
	})
}
