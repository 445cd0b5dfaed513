#!/bin/bash
# One-shot CUDA check on the device machine: build libtch.so against the
# local PyTorch (2.11 + CUDA), run the CUDA smoke tests and the benchmark.
set -u
cd "$(dirname "$0")/.."  # repository root; binaries in .dev/ (make gpu-payload)
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
echo "== torch $TORCH"; python3 -c 'import torch;print(torch.__version__, torch.cuda.get_device_name(0))'
g++ --version | head -1
rm -rf build/obj build/lib
time LIBTORCH=$TORCH .dev/tchsetup -root . -only-lib -jobs 16 2>&1 | tail -15
cp build/stubs.txt $OUT/stubs-2.11.txt 2>/dev/null
export LD_LIBRARY_PATH=$PWD/build/lib:$TORCH/lib
ldd .dev/realnvp2d | grep -E "tch|torch" 
echo "== nn tests"; (cd nn && ../.dev/nn.test -test.v 2>&1 | grep -E "^(---|===|ok|PASS|FAIL)|nn_test|cuda_test" | head -40)
echo "== flows tests"; (cd flows && ../.dev/flows.test 2>&1 | tail -3)
echo "== bench cuda"
for i in 1 2; do
.dev/realnvp2d -device cuda -steps 3000 -threads 1
python3 bench/realnvp2d.py --device cuda --steps 3000 --threads 1
python3 bench/realnvp2d.py --device cuda --steps 3000 --threads 1 --foreach
done
echo "== bench cpu (1 thread)"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
.dev/realnvp2d -device cpu -steps 2000 -threads 1
python3 bench/realnvp2d.py --device cpu --steps 2000 --threads 1
