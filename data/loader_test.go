package data

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/sugarme/gotch"
)

// indexImages is n 2×3×5 images; byte p of image i is (7i + p) % 256 and
// its label is i % 10.
func indexImages(t testing.TB, n int) *Images {
	pix := make([]uint8, n*30)
	labels := make([]uint8, n)
	for i := 0; i < n; i++ {
		for p := 0; p < 30; p++ {
			pix[i*30+p] = byte(7*i + p)
		}
		labels[i] = byte(i % 10)
	}
	m, err := NewImages("index", n, 2, 3, 5, pix, labels)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rowIndex recovers the dataset index of row r of a batch from its label
// and first byte (n <= 360).
func rowIndex(b *Batch, r int) int {
	d := b.Shape[1] * b.Shape[2] * b.Shape[3]
	first := b.Pixels[r*d]
	for i := int(b.Labels[r]); i < 400; i += 10 {
		if byte(7*i) == first {
			return i
		}
	}
	return -1
}

func TestLoaderEpochs(t *testing.T) {
	ds := indexImages(t, 103)
	for _, tc := range []struct {
		dropLast  bool
		perEpoch  int
		lastRows  int
		seenCount int
	}{{true, 10, 10, 100}, {false, 11, 3, 103}} {
		l, err := NewLoader(ds, LoaderConfig{BatchSize: 10, DropLast: tc.dropLast, Shuffle: true, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if l.BatchesPerEpoch() != tc.perEpoch {
			t.Fatalf("dropLast=%v: %d batches per epoch, want %d", tc.dropLast, l.BatchesPerEpoch(), tc.perEpoch)
		}
		it, err := l.Start(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var epochs [2][]int
		for e := 0; e < 2; e++ {
			for k := 0; k < tc.perEpoch; k++ {
				b, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b.Epoch != e || b.Index != k {
					t.Fatalf("batch %d of epoch %d reports (%d, %d)", k, e, b.Epoch, b.Index)
				}
				want := 10
				if k == tc.perEpoch-1 {
					want = tc.lastRows
				}
				if b.Len() != want || len(b.Labels) != want || len(b.Pixels) != want*30 {
					t.Fatalf("dropLast=%v batch %d: %d rows, want %d", tc.dropLast, k, b.Len(), want)
				}
				for r := 0; r < b.Len(); r++ {
					i := rowIndex(b, r)
					px, _ := ds.Example(i)
					if i < 0 || !bytes.Equal(b.Pixels[r*30:(r+1)*30], px) {
						t.Fatalf("row %d of batch %d is not a dataset image", r, k)
					}
					epochs[e] = append(epochs[e], i)
				}
				b.Release()
			}
		}
		it.Close()
		for e, seen := range epochs {
			if len(seen) != tc.seenCount {
				t.Errorf("epoch %d saw %d examples, want %d", e, len(seen), tc.seenCount)
			}
			s := slices.Clone(seen)
			slices.Sort(s)
			if len(slices.Compact(s)) != len(seen) {
				t.Errorf("epoch %d repeats examples", e)
			}
		}
		if slices.Equal(epochs[0], epochs[1]) {
			t.Error("two epochs in the same order")
		}
		if slices.IsSorted(epochs[0]) {
			t.Error("epoch 0 is not shuffled")
		}
	}
	if _, err := NewLoader(ds, LoaderConfig{BatchSize: 200, DropLast: true}); err == nil {
		t.Error("a batch larger than the dataset with drop_last accepted")
	}
	if _, err := NewLoader(ds, LoaderConfig{BatchSize: 0}); err == nil {
		t.Error("batch size 0 accepted")
	}
}

// The order is a function of (seed, epoch) alone; without Shuffle it is
// the dataset order.
func TestLoaderOrderDeterministic(t *testing.T) {
	ds := indexImages(t, 50)
	a, _ := NewLoader(ds, LoaderConfig{BatchSize: 8, Shuffle: true, Seed: 7})
	b, _ := NewLoader(ds, LoaderConfig{BatchSize: 8, Shuffle: true, Seed: 7})
	c, _ := NewLoader(ds, LoaderConfig{BatchSize: 8, Shuffle: true, Seed: 8})
	if !slices.Equal(a.Order(3), b.Order(3)) {
		t.Error("same seed and epoch, different orders")
	}
	if slices.Equal(a.Order(3), c.Order(3)) || slices.Equal(a.Order(3), a.Order(4)) {
		t.Error("another seed or epoch gives the same order")
	}
	plain, _ := NewLoader(ds, LoaderConfig{BatchSize: 8})
	if o := plain.Order(5); !slices.IsSorted(o) || len(o) != 50 {
		t.Error("unshuffled order is not the dataset order")
	}
}

// Starting mid-epoch (exact resume) gives the same batches, flips
// included, as running there from the start.
func TestLoaderResumeMidEpoch(t *testing.T) {
	ds := indexImages(t, 45)
	cfg := LoaderConfig{BatchSize: 4, Shuffle: true, HFlip: true, Seed: 3}
	l, _ := NewLoader(ds, cfg) // 12 batches per epoch, the last one short
	full, _ := l.Start(0, 0)
	var ref []*Batch
	for k := 0; k < 30; k++ {
		b, _ := full.Next()
		ref = append(ref, b)
	}
	full.Close()
	for _, start := range []int{1, 11, 12, 17} {
		epoch, index := l.Position(start)
		it, err := l.Start(epoch, index)
		if err != nil {
			t.Fatal(err)
		}
		for k := start; k < 30; k++ {
			b, _ := it.Next()
			if !bytes.Equal(b.Pixels, ref[k].Pixels) || !slices.Equal(b.Labels, ref[k].Labels) {
				t.Fatalf("resumed at step %d: step %d differs", start, k)
			}
		}
		it.Close()
		sync, _ := l.BatchAt(l.Position(start))
		if !bytes.Equal(sync.Pixels, ref[start].Pixels) {
			t.Errorf("BatchAt(step %d) differs from the iterator", start)
		}
	}
	if _, err := l.Start(0, 12); err == nil {
		t.Error("start index past the epoch accepted")
	}
}

// Stream.Host: sequential steps reuse the producer; a jump restarts it at
// the right place.
func TestStreamSteps(t *testing.T) {
	ds := indexImages(t, 30)
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 7, DropLast: true, Shuffle: true, Seed: 11})
	s, err := l.Stream(gotch.CPU, VAETransform)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, step := range []int{0, 1, 2, 9, 10, 3} {
		b, err := s.Host(step)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := l.BatchAt(l.Position(step))
		if !bytes.Equal(b.Pixels, want.Pixels) {
			t.Errorf("step %d: wrong batch", step)
		}
		b.Release()
	}
	if _, err := s.Host(-1); err == nil {
		t.Error("negative step accepted")
	}
}

func TestHFlip(t *testing.T) {
	ds := indexImages(t, 200)
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 200, HFlip: true, Seed: 5})
	b, _ := l.BatchAt(0, 0)
	flipped := 0
	for r := 0; r < 200; r++ {
		src, _ := ds.Example(r)
		got := b.Pixels[r*30 : (r+1)*30]
		mirror := make([]uint8, 30)
		flipRows(mirror, src, 5)
		switch {
		case bytes.Equal(got, src):
		case bytes.Equal(got, mirror):
			flipped++
			if got[0] != src[4] || got[4] != src[0] || got[29] != src[25] {
				t.Fatal("flip is not a left-right mirror of each row")
			}
		default:
			t.Fatalf("row %d is neither the image nor its mirror", r)
		}
	}
	if flipped < 70 || flipped > 130 {
		t.Errorf("%d of 200 flipped, want about half", flipped)
	}
	again, _ := l.BatchAt(0, 0)
	other, _ := l.BatchAt(1, 0)
	if !bytes.Equal(again.Pixels, b.Pixels) || bytes.Equal(other.Pixels, b.Pixels) {
		t.Error("flips are not a function of (seed, epoch, batch)")
	}
}

func TestIteratorCloseStopsProducer(t *testing.T) {
	ds := indexImages(t, 40)
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 4, Prefetch: 3})
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		it, _ := l.Start(0, 0)
		it.Next()
		it.Close()
		it.Close() // idempotent
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+1 {
		t.Errorf("%d goroutines after closing 20 iterators, %d before", after, before)
	}
	it, _ := l.Start(0, 0)
	it.Close()
	if _, err := it.Next(); err == nil {
		t.Error("Next on a closed iterator returned a batch")
	}
}

// data_wait: a consumer slower than the producer waits ~0; one faster
// than it waits for each batch.
func TestDataWait(t *testing.T) {
	ds := indexImages(t, 64)
	slowDS := slowDataset{ds, 2 * time.Millisecond}
	fast, _ := NewLoader(ds, LoaderConfig{BatchSize: 4, Prefetch: 4})
	slow, _ := NewLoader(slowDS, LoaderConfig{BatchSize: 4, Prefetch: 4})
	mean := func(l *Loader, work time.Duration) time.Duration {
		it, _ := l.Start(0, 0)
		defer it.Close()
		var total time.Duration
		for k := 0; k < 10; k++ {
			b, _ := it.Next()
			if k >= 2 {
				total += b.Wait
			}
			time.Sleep(work)
			b.Release()
		}
		return total / 8
	}
	if w := mean(fast, 3*time.Millisecond); w > 2*time.Millisecond {
		t.Errorf("prefetching consumer waited %v per batch", w)
	}
	if w := mean(slow, 0); w < 4*time.Millisecond {
		t.Errorf("consumer of a slow producer (8ms/batch) waited only %v per batch", w)
	}
}

type slowDataset struct {
	*Images
	delay time.Duration
}

func (s slowDataset) Example(i int) ([]byte, int) {
	time.Sleep(s.delay)
	return s.Images.Example(i)
}

func TestSubset(t *testing.T) {
	ds := indexImages(t, 10)
	s := Subset{ds, []int{7, 2}}
	if s.Len() != 2 {
		t.Fatal(s.Len())
	}
	a, la := s.Example(1)
	b, lb := ds.Example(2)
	if !bytes.Equal(a, b) || la != lb {
		t.Error("subset example 1 is not example 2")
	}
}

func TestNewImagesValidates(t *testing.T) {
	if _, err := NewImages("x", 2, 1, 2, 2, make([]uint8, 7), nil); err == nil {
		t.Error("short pixels accepted")
	}
	if _, err := NewImages("x", 2, 1, 2, 2, make([]uint8, 8), []uint8{1}); err == nil {
		t.Error("short labels accepted")
	}
}

// Throughput of shuffled batching from cached uint8 arrays, CIFAR-sized
// (3×32×32); run with -cpu 1 for one core:
//
//	go test ./data -run '^$' -bench Loader -cpu 1
func BenchmarkLoader(b *testing.B) {
	const n = 50000
	pix := make([]uint8, n*3072)
	for i := range pix {
		pix[i] = byte(i * 31)
	}
	ds, _ := NewImages("cifar-sized", n, 3, 32, 32, pix, make([]uint8, n))
	for _, bs := range []int{64, 128} {
		for _, flip := range []bool{false, true} {
			name := map[bool]string{false: "", true: "/hflip"}[flip]
			b.Run("batch"+itoa(bs)+name, func(b *testing.B) {
				l, _ := NewLoader(ds, LoaderConfig{BatchSize: bs, DropLast: true, Shuffle: true, HFlip: flip, Seed: 1})
				it, _ := l.Start(0, 0)
				defer it.Close()
				var wait time.Duration
				b.ResetTimer()
				for k := 0; k < b.N; k++ {
					batch, _ := it.Next()
					wait += batch.Wait
					batch.Release()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*bs)/b.Elapsed().Seconds(), "images/s")
				b.ReportMetric(float64(wait.Nanoseconds())/float64(b.N), "wait-ns/batch")
			})
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var s []byte
	for ; i > 0; i /= 10 {
		s = append([]byte{byte('0' + i%10)}, s...)
	}
	return string(s)
}

// data_wait with a consumer that spends 1ms per step elsewhere (sleeping,
// as a goroutine blocked in a GPU call does): the wait per batch is what
// the trainer's data_wait metric would show.
//
//	go test ./data -run '^$' -bench DataWait -cpu 1
func BenchmarkDataWait(b *testing.B) {
	const n = 20000
	ds, _ := NewImages("cifar-sized", n, 3, 32, 32, make([]uint8, n*3072), nil)
	for _, bs := range []int{64, 128} {
		b.Run("batch"+itoa(bs), func(b *testing.B) {
			l, _ := NewLoader(ds, LoaderConfig{BatchSize: bs, DropLast: true, Shuffle: true, HFlip: true, Seed: 1})
			it, _ := l.Start(0, 0)
			defer it.Close()
			var wait, worst time.Duration
			for k := 0; k < b.N; k++ {
				batch, _ := it.Next()
				wait += batch.Wait
				worst = max(worst, batch.Wait)
				batch.Release()
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(wait.Nanoseconds())/float64(b.N), "wait-ns/batch")
			b.ReportMetric(float64(worst.Nanoseconds()), "max-wait-ns")
		})
	}
}
