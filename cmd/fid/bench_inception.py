#!/usr/bin/python3
"""Feature-extraction throughput of pytorch-fid's Inception-v3 in PyTorch
eager, the baseline of fid/inception's BenchmarkInceptionFeatures:

    /usr/bin/python3 cmd/fid/bench_inception.py --threads 1 --batch 16 --batches 4
    MOLLIFY_THREADS=1 MOLLIFY_BENCH_BATCH=16 go test ./fid/inception -run '^$' -bench InceptionFeatures -benchtime 4x

What pytorch-fid's get_activations does per batch for dims 2048: the
InceptionV3 forward (resize to 299 even when the images are 299x299,
2x-1, blocks 0-3) under no_grad, in eval mode, then the features to numpy.
Weights are random (torchvision's default init); the images are 299x299.
Prints one JSON line: images/s (wall) and CPU seconds per image, which is
steadier on a shared machine.
"""
import argparse
import importlib.util
import json
import os
import time

import torch
import torch.nn.functional as F

spec = importlib.util.spec_from_file_location(
    "export_inception", os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_inception.py"))
ei = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ei)

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--batches", type=int, default=4)
ap.add_argument("--device", default="cpu")
args = ap.parse_args()
torch.set_num_threads(args.threads)
dev = torch.device(args.device)

model = ei.FIDFeatures(ei.fid_inception_v3()).eval().to(dev)


def pool3(x):
    """pytorch-fid's InceptionV3(output_blocks=[3]).forward(x)[0], squeezed."""
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    for block in model.blocks:
        x = block(x)
    return x.squeeze(3).squeeze(2).cpu().numpy()


x = torch.rand(args.batch, 3, 299, 299, device=dev)
with torch.no_grad():
    pool3(x)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        pool3(x)
    dt, dc = time.perf_counter() - t, time.process_time() - c
n = args.batch * args.batches
print(json.dumps({"impl": "pytorch", "images_per_s": n / dt, "cpu_s_per_image": dc / n, "batch": args.batch,
                  "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(dev)}))
