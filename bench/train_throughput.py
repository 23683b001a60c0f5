"""PyTorch's training throughput beside ours (bench/train_throughput.ts): images/s of whole
training steps (forward, CrossEntropyLoss, backward, AdamW) of the notebook's models
(tests/pytorch/seed_models.py: LeNet, LeNet5 tanh/avg) at each batch size, on CPU threads.
Inputs are MNIST-shaped normal noise (a step's time does not depend on the pixels).

usage: train_throughput.py [--models lenet,lenet5] [--batches 32,64,128,256,512]
                           [--threads 2] [--images 8192] [--trials 3]
Prints one JSON line: {"lenet": {"32": images_per_s, ...}, "lenet5": {...}, "threads": n}.
Each figure is the median of `trials` timings of `images` images (at least 4 steps)."""
import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "pytorch"))
from seed_models import LeNet, LeNet5  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--models", default="lenet,lenet5")
parser.add_argument("--batches", default="32,64,128,256,512")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--images", type=int, default=8192)
parser.add_argument("--trials", type=int, default=3)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

out = {"threads": torch.get_num_threads(), "torch": torch.__version__}
for name in args.models.split(","):
    make = {"lenet": LeNet, "lenet5": LeNet5}[name]
    figures = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        model = make()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        loss_function = nn.CrossEntropyLoss()
        x = torch.randn(batch, 1, 28, 28)
        y = torch.randint(0, 10, (batch,))
        steps = max(4, args.images // batch)

        def step():
            optimizer.zero_grad()
            loss = loss_function(model(x), y)
            loss.backward()
            optimizer.step()
            return loss.item()

        step()
        step()  # warm-up: first calls allocate
        times = []
        for _ in range(args.trials):
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times.append(time.perf_counter() - t0)
        figures[str(batch)] = round(batch * steps / sorted(times)[len(times) // 2])
    out[name] = figures
print(json.dumps(out))
