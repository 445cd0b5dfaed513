package inception

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/torchfile"
	"github.com/mollify/mollify/nn"
)

// WeightsURL is where pytorch-fid publishes the FID Inception weights
// (its GitHub release "fid_weights").
const WeightsURL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

// WeightsEnv names the environment variable that holds the weights path
// when no flag gives one.
const WeightsEnv = "MOLLIFY_INCEPTION"

// ErrNoWeights is wrapped by the errors for a weights file that is not
// given or not there; callers that can do without FID test for it.
var ErrNoWeights = errors.New("the FID Inception weights are not available")

// Dims are the feature sizes pytorch-fid offers, one per block: after the
// first max pool (64), the second (192), Mixed_6e (768) and the final
// average pool (2048, the standard FID).
var Dims = []int{64, 192, 768, 2048}

// blockOf is pytorch-fid's BLOCK_INDEX_BY_DIM.
func blockOf(dims int) (int, error) {
	if i := slices.Index(Dims, dims); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("inception: dims must be one of %v (pytorch-fid's blocks), not %d", Dims, dims)
}

// WeightsPath resolves the Inception weights path: flag if set, else
// $MOLLIFY_INCEPTION. A path that is not given or does not exist is an
// error wrapping ErrNoWeights that says where to get the file.
func WeightsPath(flag string) (string, error) {
	p, from := flag, "the weights flag"
	if p == "" {
		p, from = os.Getenv(WeightsEnv), "$"+WeightsEnv
	}
	hint := fmt.Sprintf("download pytorch-fid's pt_inception-2015-12-05-6726825d.pth (GitHub release \"fid_weights\": %s) and pass it with -weights or set %s to its path", WeightsURL, WeightsEnv)
	if p == "" {
		return "", fmt.Errorf("inception: %w: %s", ErrNoWeights, hint)
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		return "", fmt.Errorf("inception: %w: %s (from %s) is not a file; %s", ErrNoWeights, p, from, hint)
	}
	return p, nil
}

// Options configure Load.
type Options struct {
	Device gotch.Device // where the weights live and the images must be
	Dims   int          // 64, 192, 768 or 2048; 0 means 2048
}

func (o Options) dims() int {
	if o.Dims == 0 {
		return 2048
	}
	return o.Dims
}

// Net is pytorch-fid's Inception-v3 (FIDInceptionA/C/E_1/E_2 blocks,
// BN eps 1e-3) in eval mode, evaluated with libtorch ops. Each
// BasicConv2d's batch norm is folded into its convolution once, at load
// (w·γ/√(σ²+ε), β−μ·γ/√(σ²+ε), in float64), which is exact up to float32
// rounding; the 1×1 convolutions of a block that read the same input run as
// one. It is a fid.FeatureNet. Close frees the weights.
type Net struct {
	store  *nn.Store
	dims   int // features returned: opt.Dims / div
	block  int // last block needed for dims
	stem0  []*basicConv
	stem1  []*basicConv
	mixed2 []mixedBlock // Mixed_5b .. Mixed_6e
	mixed3 []mixedBlock // Mixed_7a .. Mixed_7c
}

// Load reads pytorch-fid's weights (pt_inception-2015-12-05-6726825d.pth,
// or any torch.save'd state dict with its names and shapes, in the legacy or
// the zip format) onto opt.Device.
func Load(path string, opt Options) (*Net, error) {
	return load(path, opt, 1)
}

func load(path string, opt Options, div int64) (*Net, error) {
	if _, err := blockOf(opt.dims()); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("inception: %w: %v; get pt_inception-2015-12-05-6726825d.pth from pytorch-fid's GitHub release \"fid_weights\" (%s)", ErrNoWeights, err, WeightsURL)
	}
	sd, err := torchfile.Load(path)
	if err != nil {
		return nil, fmt.Errorf("inception: reading the Inception weights: %w", err)
	}
	m, err := newNet(stateDictSource(sd), opt, div)
	if err != nil {
		return nil, fmt.Errorf("inception: %s: %w", path, err)
	}
	return m, nil
}

// weightSource returns the float32 values of a named tensor after
// checking its shape.
type weightSource func(name string, shape []int64) ([]float32, error)

// errMissing marks a tensor the state dict lacks.
var errMissing = errors.New("missing")

func stateDictSource(sd torchfile.StateDict) weightSource {
	return func(name string, shape []int64) ([]float32, error) {
		t := sd[name]
		if t == nil {
			return nil, fmt.Errorf("%s is %w", name, errMissing)
		}
		if !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("%s has shape %v, but pytorch-fid's Inception-v3 has %v", name, t.Shape, shape)
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	}
}

// checkTorchvision rejects torchvision's ImageNet Inception-v3 weights,
// which load into the same names but are a different network for FID.
func checkTorchvision(get weightSource, div int64) error {
	if div != 1 {
		return nil
	}
	if _, err := get("fc.weight", []int64{1008, 2048}); err != nil && !errors.Is(err, errMissing) {
		return fmt.Errorf("%w; pytorch-fid's weights classify 1008 classes, so these look like another Inception-v3 "+
			"(torchvision's ImageNet weights give different FIDs); use pt_inception-2015-12-05-6726825d.pth from %s", err, WeightsURL)
	}
	return nil
}

// newNet builds the network from get. div divides every channel
// count but the input's, for the tests' reduced-width fixtures.
func newNet(get weightSource, opt Options, div int64) (m *Net, err error) {
	block, err := blockOf(opt.dims())
	if err != nil {
		return nil, err
	}
	b := &builder{get: get, div: div, store: nn.NewStore(opt.Device)}
	defer func() {
		if err != nil {
			b.store.Close()
			m = nil
		}
	}()
	defer nn.Recover(&err) // before the deferred Close looks at err
	sc := ts.NewScope()
	defer sc.Close()
	m = &Net{store: b.store, dims: opt.dims() / int(div), block: block}
	m.stem0 = []*basicConv{
		b.conv("Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0),
		b.conv("Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0),
		b.conv("Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1),
	}
	m.stem1 = []*basicConv{
		b.conv("Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0),
		b.conv("Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0),
	}
	m.mixed2 = []mixedBlock{
		b.inceptionA("Mixed_5b", 192, 32),
		b.inceptionA("Mixed_5c", 256, 64),
		b.inceptionA("Mixed_5d", 288, 64),
		b.inceptionB("Mixed_6a", 288),
		b.inceptionC("Mixed_6b", 768, 128),
		b.inceptionC("Mixed_6c", 768, 160),
		b.inceptionC("Mixed_6d", 768, 160),
		b.inceptionC("Mixed_6e", 768, 192),
	}
	m.mixed3 = []mixedBlock{
		b.inceptionD("Mixed_7a", 768),
		b.inceptionE("Mixed_7b", 1280, false),
		b.inceptionE("Mixed_7c", 2048, true),
	}
	if b.err == nil {
		b.err = checkTorchvision(get, div)
	}
	if b.err != nil {
		return nil, b.err
	}
	return m, nil
}

// Dim is the feature size (opt.Dims).
func (m *Net) Dim() int { return m.dims }

// Device is where the weights live.
func (m *Net) Device() gotch.Device { return m.store.Device }

// Close frees the weights.
func (m *Net) Close() { m.store.Close() }

// Features returns the pooled activations of the block that gives Dim()
// features, for images in [0, 1] (N×3×H×W, any H and W).
func (m *Net) Features(x *ts.Tensor) (*ts.Tensor, error) {
	out, err := m.blocks(x, m.block, false)
	if err != nil {
		return nil, err
	}
	return out[m.block], nil
}

// blocks runs the network up to block last and returns the pooled N×C
// features of block last, and with all of blocks 0..last-1 too (the other
// entries are nil).
func (m *Net) blocks(x *ts.Tensor, last int, all bool) (out [4]*ts.Tensor, err error) {
	defer nn.Recover(&err)
	if err := fid.CheckImages(x, m.Device()); err != nil {
		return out, err
	}
	ts.NoGrad(func() {
		sc := ts.NewScope()
		defer sc.Close()
		// pytorch-fid: F.interpolate(x, size=(299, 299), mode='bilinear',
		// align_corners=False), then 2*x - 1.
		h := x.MustUpsampleBilinear2d([]int64{299, 299}, false, nil, nil, false)
		h = h.MustMulScalar(ts.IntScalar(2), true).MustSubScalar(ts.IntScalar(1), true)
		pool := func(i int, h *ts.Tensor) {
			if i != last && !all {
				return
			}
			p := h.MustAdaptiveAvgPool2d([]int64{1, 1}, false).MustFlatten(1, 3, true)
			sc.Keep(p)
			out[i] = p
		}
		for _, c := range m.stem0 {
			h = c.forward(h, true)
		}
		h = h.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
		pool(0, h)
		if last == 0 {
			return
		}
		for _, c := range m.stem1 {
			h = c.forward(h, true)
		}
		h = h.MustMaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
		pool(1, h)
		if last == 1 {
			return
		}
		for _, b := range m.mixed2 {
			h = b.forward(h)
		}
		pool(2, h)
		if last == 2 {
			return
		}
		for _, b := range m.mixed3 {
			h = b.forward(h)
		}
		pool(3, h)
	})
	return out, nil
}

// basicConv is BasicConv2d (conv without bias, BN eps 1e-3, ReLU) with
// the BN folded into the conv's weight and bias. A fused 1×1 conv holds
// several BasicConv2d that read the same input; split gives their widths.
type basicConv struct {
	w, b       *ts.Tensor
	stride     []int64
	pad        []int64
	split      []int64
	inChannels int64
}

var unitDilation = []int64{1, 1}

// forward returns relu(conv(x)); del frees x.
func (c *basicConv) forward(x *ts.Tensor, del bool) *ts.Tensor {
	y := ts.MustConv2d(x, c.w, c.b, c.stride, c.pad, unitDilation, 1)
	if del {
		x.MustDrop()
	}
	y.MustRelu_()
	return y
}

// forwardSplit runs a fused conv and returns its parts (views).
func (c *basicConv) forwardSplit(x *ts.Tensor) []*ts.Tensor {
	y := c.forward(x, false)
	return y.MustSplitWithSizes(c.split, 1, true)
}

// bnEps is torchvision's BasicConv2d batch-norm epsilon.
const bnEps = 1e-3

// builder reads and folds the weights of one network; the first error
// sticks and later calls return nil.
type builder struct {
	get   weightSource
	div   int64
	store *nn.Store
	err   error
}

func (b *builder) ch(c int64) int64 {
	if c == 3 {
		return 3 // the RGB input
	}
	return c / b.div
}

// folded reads BasicConv2d name and returns its BN-folded weight and bias
// as float32, shapes out×in×kh×kw and out.
func (b *builder) folded(name string, in, out, kh, kw int64) (w []float32, bias []float32, err error) {
	in, out = b.ch(in), b.ch(out)
	w, err = b.get(name+".conv.weight", []int64{out, in, kh, kw})
	if err != nil {
		return nil, nil, err
	}
	var bn [4][]float32
	for i, p := range []string{"weight", "bias", "running_mean", "running_var"} {
		if bn[i], err = b.get(name+".bn."+p, []int64{out}); err != nil {
			return nil, nil, err
		}
	}
	gamma, beta, mean, variance := bn[0], bn[1], bn[2], bn[3]
	bias = make([]float32, out)
	per := int(in * kh * kw)
	for o := range bias {
		v := float64(variance[o])
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("%s.bn.running_var[%d] is %v; a variance must be finite and ≥ 0", name, o, v)
		}
		s := float64(gamma[o]) / math.Sqrt(v+bnEps)
		bias[o] = float32(float64(beta[o]) - float64(mean[o])*s)
		row := w[o*per : (o+1)*per]
		for i, x := range row {
			row[i] = float32(float64(x) * s)
		}
	}
	return w, bias, nil
}

// conv loads one BasicConv2d (square stride s, padding ph×pw).
func (b *builder) conv(name string, in, out, kh, kw, s, ph, pw int64) *basicConv {
	if b.err != nil {
		return nil
	}
	w, bias, err := b.folded(name, in, out, kh, kw)
	if err != nil {
		b.err = err
		return nil
	}
	return b.make(name, w, bias, []int64{b.ch(out), b.ch(in), kh, kw}, nil, []int64{s, s}, []int64{ph, pw})
}

// fused1x1 loads several 1×1 BasicConv2d that read the same input as one
// conv whose output channels are theirs, in order.
func (b *builder) fused1x1(prefix string, in int64, parts ...struct {
	name string
	out  int64
}) *basicConv {
	if b.err != nil {
		return nil
	}
	var w, bias []float32
	var split []int64
	total := int64(0)
	for _, p := range parts {
		pw, pb, err := b.folded(prefix+"."+p.name, in, p.out, 1, 1)
		if err != nil {
			b.err = err
			return nil
		}
		w, bias = append(w, pw...), append(bias, pb...)
		split = append(split, b.ch(p.out))
		total += b.ch(p.out)
	}
	return b.make(prefix, w, bias, []int64{total, b.ch(in), 1, 1}, split, []int64{1, 1}, []int64{0, 0})
}

func (b *builder) make(name string, w, bias []float32, shape, split, stride, pad []int64) *basicConv {
	wt, err := ts.FromBytes(float32Bytes(w), shape, gotch.Float)
	if err == nil {
		wt, err = b.store.Root().Buffer(name+".weight", wt)
	}
	var bt *ts.Tensor
	if err == nil {
		if bt, err = ts.FromBytes(float32Bytes(bias), shape[:1], gotch.Float); err == nil {
			bt, err = b.store.Root().Buffer(name+".bias", bt)
		}
	}
	if err != nil {
		b.err = fmt.Errorf("%s: %w", name, err)
		return nil
	}
	return &basicConv{w: wt, b: bt, stride: stride, pad: pad, split: split, inChannels: shape[1]}
}

func float32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

type part = struct {
	name string
	out  int64
}

// mixedBlock is one of Inception-v3's Mixed_* blocks.
type mixedBlock interface {
	forward(x *ts.Tensor) *ts.Tensor // frees x
}

// avgPool3 is FID's avg_pool2d(3, 1, 1, count_include_pad=False).
func avgPool3(x *ts.Tensor) *ts.Tensor {
	return x.MustAvgPool2d([]int64{3, 3}, []int64{1, 1}, []int64{1, 1}, false, false, nil, false)
}

func maxPool3(x *ts.Tensor, stride int64, pad int64) *ts.Tensor {
	return x.MustMaxPool2d([]int64{3, 3}, []int64{stride, stride}, []int64{pad, pad}, unitDilation, false, false)
}

// catFree concatenates along channels and frees the parts.
func catFree(parts ...*ts.Tensor) *ts.Tensor {
	y := ts.MustCat(parts, 1)
	for _, p := range parts {
		p.MustDrop()
	}
	return y
}

// inceptionA is FIDInceptionA (Mixed_5b/c/d).
type inceptionA struct {
	in1x1                    *basicConv // branch1x1, branch5x5_1, branch3x3dbl_1
	b5x5_2, b3dbl_2, b3dbl_3 *basicConv
	pool                     *basicConv
}

func (b *builder) inceptionA(name string, in, poolFeatures int64) mixedBlock {
	return &inceptionA{
		in1x1:   b.fused1x1(name, in, part{"branch1x1", 64}, part{"branch5x5_1", 48}, part{"branch3x3dbl_1", 64}),
		b5x5_2:  b.conv(name+".branch5x5_2", 48, 64, 5, 5, 1, 2, 2),
		b3dbl_2: b.conv(name+".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1),
		b3dbl_3: b.conv(name+".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1),
		pool:    b.conv(name+".branch_pool", in, poolFeatures, 1, 1, 1, 0, 0),
	}
}

func (m *inceptionA) forward(x *ts.Tensor) *ts.Tensor {
	s := m.in1x1.forwardSplit(x)
	b5 := m.b5x5_2.forward(s[1], true)
	b3 := m.b3dbl_3.forward(m.b3dbl_2.forward(s[2], true), true)
	bp := m.pool.forward(avgPool3(x), true)
	x.MustDrop()
	return catFree(s[0], b5, b3, bp)
}

// inceptionB is InceptionB (Mixed_6a).
type inceptionB struct {
	b3x3, b3dbl_1, b3dbl_2, b3dbl_3 *basicConv
}

func (b *builder) inceptionB(name string, in int64) mixedBlock {
	return &inceptionB{
		b3x3:    b.conv(name+".branch3x3", in, 384, 3, 3, 2, 0, 0),
		b3dbl_1: b.conv(name+".branch3x3dbl_1", in, 64, 1, 1, 1, 0, 0),
		b3dbl_2: b.conv(name+".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1),
		b3dbl_3: b.conv(name+".branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0),
	}
}

func (m *inceptionB) forward(x *ts.Tensor) *ts.Tensor {
	b3 := m.b3x3.forward(x, false)
	bd := m.b3dbl_3.forward(m.b3dbl_2.forward(m.b3dbl_1.forward(x, false), true), true)
	bp := maxPool3(x, 2, 0)
	x.MustDrop()
	return catFree(b3, bd, bp)
}

// inceptionC is FIDInceptionC (Mixed_6b..e).
type inceptionC struct {
	in1x1                  *basicConv // branch1x1, branch7x7_1, branch7x7dbl_1
	b7_2, b7_3             *basicConv
	bd_2, bd_3, bd_4, bd_5 *basicConv
	pool                   *basicConv
}

func (b *builder) inceptionC(name string, in, c7 int64) mixedBlock {
	return &inceptionC{
		in1x1: b.fused1x1(name, in, part{"branch1x1", 192}, part{"branch7x7_1", c7}, part{"branch7x7dbl_1", c7}),
		b7_2:  b.conv(name+".branch7x7_2", c7, c7, 1, 7, 1, 0, 3),
		b7_3:  b.conv(name+".branch7x7_3", c7, 192, 7, 1, 1, 3, 0),
		bd_2:  b.conv(name+".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0),
		bd_3:  b.conv(name+".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3),
		bd_4:  b.conv(name+".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0),
		bd_5:  b.conv(name+".branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3),
		pool:  b.conv(name+".branch_pool", in, 192, 1, 1, 1, 0, 0),
	}
}

func (m *inceptionC) forward(x *ts.Tensor) *ts.Tensor {
	s := m.in1x1.forwardSplit(x)
	b7 := m.b7_3.forward(m.b7_2.forward(s[1], true), true)
	bd := m.bd_5.forward(m.bd_4.forward(m.bd_3.forward(m.bd_2.forward(s[2], true), true), true), true)
	bp := m.pool.forward(avgPool3(x), true)
	x.MustDrop()
	return catFree(s[0], b7, bd, bp)
}

// inceptionD is InceptionD (Mixed_7a).
type inceptionD struct {
	in1x1            *basicConv // branch3x3_1, branch7x7x3_1
	b3_2             *basicConv
	b7_2, b7_3, b7_4 *basicConv
}

func (b *builder) inceptionD(name string, in int64) mixedBlock {
	return &inceptionD{
		in1x1: b.fused1x1(name, in, part{"branch3x3_1", 192}, part{"branch7x7x3_1", 192}),
		b3_2:  b.conv(name+".branch3x3_2", 192, 320, 3, 3, 2, 0, 0),
		b7_2:  b.conv(name+".branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3),
		b7_3:  b.conv(name+".branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0),
		b7_4:  b.conv(name+".branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0),
	}
}

func (m *inceptionD) forward(x *ts.Tensor) *ts.Tensor {
	s := m.in1x1.forwardSplit(x)
	b3 := m.b3_2.forward(s[0], true)
	b7 := m.b7_4.forward(m.b7_3.forward(m.b7_2.forward(s[1], true), true), true)
	bp := maxPool3(x, 2, 0)
	x.MustDrop()
	return catFree(b3, b7, bp)
}

// inceptionE is FIDInceptionE_1 (Mixed_7b, average pool without the
// padding) or FIDInceptionE_2 (Mixed_7c, max pool).
type inceptionE struct {
	in1x1              *basicConv // branch1x1, branch3x3_1, branch3x3dbl_1
	b3_2a, b3_2b       *basicConv
	bd_2, bd_3a, bd_3b *basicConv
	pool               *basicConv
	maxPool            bool
}

func (b *builder) inceptionE(name string, in int64, maxPool bool) mixedBlock {
	return &inceptionE{
		in1x1:   b.fused1x1(name, in, part{"branch1x1", 320}, part{"branch3x3_1", 384}, part{"branch3x3dbl_1", 448}),
		b3_2a:   b.conv(name+".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1),
		b3_2b:   b.conv(name+".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0),
		bd_2:    b.conv(name+".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1),
		bd_3a:   b.conv(name+".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1),
		bd_3b:   b.conv(name+".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0),
		pool:    b.conv(name+".branch_pool", in, 192, 1, 1, 1, 0, 0),
		maxPool: maxPool,
	}
}

func (m *inceptionE) forward(x *ts.Tensor) *ts.Tensor {
	s := m.in1x1.forwardSplit(x)
	b3a := m.b3_2a.forward(s[1], false)
	b3b := m.b3_2b.forward(s[1], true)
	d := m.bd_2.forward(s[2], true)
	bda := m.bd_3a.forward(d, false)
	bdb := m.bd_3b.forward(d, true)
	var p *ts.Tensor
	if m.maxPool {
		p = maxPool3(x, 1, 1)
	} else {
		p = avgPool3(x)
	}
	bp := m.pool.forward(p, true)
	x.MustDrop()
	return catFree(s[0], b3a, b3b, bda, bdb, bp)
}

// TorchScript is a FID network exported as TorchScript by
// cmd/fid/export_inception.py: its forward takes images in [0, 1]
// (N×3×H×W), preprocesses them as pytorch-fid does and returns the
// 64+192+768+2048 pooled block features side by side (N×3072), of which
// Features returns the Dims() columns.
type TorchScript struct {
	m      *ts.CModule
	dev    gotch.Device
	div    int64 // channel divisor of the tests' reduced network
	dims   int
	offset int64 // of the dims block's columns
}

// LoadTorchScript loads a module written by cmd/fid/export_inception.py
// onto opt.Device and checks its output on a probe batch.
func LoadTorchScript(path string, opt Options) (*TorchScript, error) {
	return loadTorchScript(path, opt, 1)
}

func loadTorchScript(path string, opt Options, div int64) (n *TorchScript, err error) {
	defer nn.Recover(&err)
	block, err := blockOf(opt.dims())
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("inception: %w: %v; export one with `python3 cmd/fid/export_inception.py pt_inception-2015-12-05-6726825d.pth %s` (weights: %s)", ErrNoWeights, err, path, WeightsURL)
	}
	m, err := ts.ModuleLoadOnDevice(path, opt.Device)
	if err != nil {
		return nil, fmt.Errorf("inception: loading TorchScript %s: %w", path, err)
	}
	n = &TorchScript{m: m, dev: opt.Device, div: div}
	n.setDims(block)
	sc := ts.NewScope()
	defer sc.Close()
	probe := ts.MustZeros([]int64{1, 3, 299, 299}, gotch.Float, opt.Device)
	if _, err := n.Features(probe); err != nil {
		m.Drop()
		return nil, fmt.Errorf("inception: %s: %w", path, err)
	}
	return n, nil
}

// setDims selects the columns of block.
func (n *TorchScript) setDims(block int) {
	n.dims, n.offset = Dims[block]/int(n.div), 0
	for _, d := range Dims[:block] {
		n.offset += int64(d) / n.div
	}
}

// Dim is the feature size.
func (n *TorchScript) Dim() int { return n.dims }

// Device is where the module lives.
func (n *TorchScript) Device() gotch.Device { return n.dev }

// Close frees the module.
func (n *TorchScript) Close() { n.m.Drop() }

// Features runs the module and returns its Dim() columns.
func (n *TorchScript) Features(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer nn.Recover(&err)
	if err := fid.CheckImages(x, n.dev); err != nil {
		return nil, err
	}
	var y *ts.Tensor
	ts.NoGrad(func() { y, err = n.m.ForwardTs([]*ts.Tensor{x}) })
	if err != nil {
		return nil, fmt.Errorf("inception: TorchScript forward: %w", err)
	}
	s := y.MustSize()
	if width := 3072 / n.div; len(s) != 2 || s[1] != width || y.DType() != gotch.Float {
		return nil, fmt.Errorf("inception: the TorchScript module returns %v %v, want float32 (N, %d): pooled features of pytorch-fid's four blocks, as cmd/fid/export_inception.py exports", y.DType(), s, width)
	}
	return y.MustNarrow(1, n.offset, int64(n.dims), true), nil
}
