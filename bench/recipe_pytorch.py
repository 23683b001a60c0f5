"""The LeNet-5 recipe of the README (epochs, batch, AdamW lr and weight decay, an lr schedule
stepped every batch) in PyTorch, for its time beside ours: the notebook's LeNet5
(tests/pytorch/seed_models.py), torch.optim.AdamW and torch's own schedulers
(CosineAnnealingLR with T_max = the run's steps, OneCycleLR with its defaults), on the MNIST
files `deno task download` writes (data/mnist/*.safetensors), normalized as the notebook does.
Batches are sliced from one tensor in a fresh random order each epoch (no DataLoader workers:
the fastest way to feed torch here, so the time is torch's compute).

usage: recipe_pytorch.py [--data data] [--epochs 8] [--batch-size 64] [--lr 5e-3]
                         [--weight-decay 1e-4] [--lr-schedule constant|cosine|onecycle]
                         [--threads 2] [--seed 0] [--activation tanh|relu] [--pool avg|max]
Prints one JSON line per epoch (seconds, train loss/accuracy, test accuracy), then a summary
line with the total training seconds."""
import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "pytorch"))
from seed_models import LeNet5, read_safetensors  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data", default="data")
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--weight-decay", type=float, default=1e-4)
parser.add_argument("--lr-schedule", choices=["constant", "cosine", "onecycle"], default="onecycle")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--activation", choices=["tanh", "relu"], default="tanh")
parser.add_argument("--pool", choices=["avg", "max"], default="avg")
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)


def split(name):
    path = os.path.join(args.data, "mnist", f"{name}.safetensors")
    if not os.path.exists(path):
        sys.exit(f"{path}: missing (run `deno task download` first)")
    t = read_safetensors(path)
    x = ((t["images"].float() / 255 - 0.1307) / 0.3081).unsqueeze(1)
    return x, t["labels"].long()


train_x, train_y = split("train")
test_x, test_y = split("test")
model = LeNet5()
# The notebook's LeNet5 is tanh/avg; the variants swap the modules in place, as --activation
# and --pool do on our side.
if args.activation == "relu" or args.pool == "max":
    for seq in (model.features, model.classifier):
        for i, m in enumerate(seq):
            if isinstance(m, nn.Tanh) and args.activation == "relu":
                seq[i] = nn.ReLU()
            if isinstance(m, nn.AvgPool2d) and args.pool == "max":
                seq[i] = nn.MaxPool2d(2)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
steps_per_epoch = -(-len(train_x) // args.batch_size)
total = args.epochs * steps_per_epoch
if args.lr_schedule == "cosine":
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
elif args.lr_schedule == "onecycle":
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total)
else:
    scheduler = None
loss_function = nn.CrossEntropyLoss()

train_seconds = 0.0
for epoch in range(1, args.epochs + 1):
    model.train()
    t0 = time.time()
    order = torch.randperm(len(train_x))
    running, correct = 0.0, 0
    for b in range(steps_per_epoch):
        idx = order[b * args.batch_size:(b + 1) * args.batch_size]
        images, labels = train_x[idx], train_y[idx]
        optimizer.zero_grad()
        outputs = model(images)
        loss = loss_function(outputs, labels)
        loss.backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
        running += loss.item()
        correct += (outputs.argmax(1) == labels).sum().item()
    seconds = time.time() - t0
    train_seconds += seconds
    model.eval()
    with torch.no_grad():
        test_correct = sum((model(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum().item()
                           for i in range(0, len(test_x), 1000))
    print(json.dumps({
        "epoch": epoch, "train_s": round(seconds, 2),
        "train_img_s": round(len(train_x) / seconds), "train_loss": round(running / steps_per_epoch, 4),
        "train_acc": round(100 * correct / len(train_x), 2),
        "test_acc": round(100 * test_correct / len(test_x), 2),
    }), flush=True)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "recipe": vars(args), "train_s": round(train_seconds, 1)}))
