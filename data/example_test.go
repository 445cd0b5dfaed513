package data_test

import (
	"fmt"

	"github.com/mollify/mollify/data"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// A training loop's view: shuffled, prefetched batches by step, resumable
// at any step, converted to float on the device with the flow transform.
func ExampleLoader() {
	pix := make([]uint8, 10*3*4*4) // ten 3×4×4 images
	for i := range pix {
		pix[i] = uint8(i)
	}
	ds, _ := data.NewImages("tiny", 10, 3, 4, 4, pix, nil)
	l, _ := data.NewLoader(ds, data.LoaderConfig{BatchSize: 4, DropLast: false, Shuffle: true, Seed: 1})
	fmt.Println("batches per epoch:", l.BatchesPerEpoch())

	stream, _ := l.Stream(gotch.CPU, data.FlowTransform)
	defer stream.Close()
	for _, step := range []int{0, 1, 2, 3} { // step 2 is epoch 0's short batch
		sc := ts.NewScope()
		x, _ := stream.Batch(step)
		epoch, index := l.Position(step)
		fmt.Println("step", step, "epoch", epoch, "index", index, "shape", x.MustSize(), x.DType())
		sc.Close()
	}
	fmt.Println("bits/dim offset:", data.FlowTransform.BitsPerDimOffset())
	// Output:
	// batches per epoch: 3
	// step 0 epoch 0 index 0 shape [4 3 4 4] Float
	// step 1 epoch 0 index 1 shape [4 3 4 4] Float
	// step 2 epoch 0 index 2 shape [2 3 4 4] Float
	// step 3 epoch 1 index 0 shape [4 3 4 4] Float
	// bits/dim offset: 8
}
