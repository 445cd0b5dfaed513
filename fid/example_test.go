package fid

import "fmt"

func ExampleAccumulator() {
	// Three 2-d feature rows, added in two batches as a model would emit them.
	acc, err := NewAccumulator(2)
	if err != nil {
		fmt.Println(err)
		return
	}
	acc.AddFloat32([]float32{1, 2, 3, 6})
	acc.AddFloat32([]float32{5, 10})
	st, err := acc.Stats()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rows:", acc.Count())
	fmt.Println("mu:", st.Mu)
	fmt.Println("sigma:", st.Sigma.RawMatrix().Data) // np.cov(rows, rowvar=False)
	// Output:
	// rows: 3
	// mu: [3 6]
	// sigma: [4 8 8 16]
}
