"""The PyTorch side of bench/pytorch_crosscheck.ts: the seed's modern LeNet (as
seed_reference.py defines it), AdamW(lr 1e-3, weight_decay 1e-4), CrossEntropyLoss, float32,
batch 32, trained from a GIVEN initial state_dict over a GIVEN order of the training images,
recording every step's loss and correct count, then the seed's test pass after each epoch.

usage:
  pytorch_crosscheck.py init SEED EPOCHS DIR DATA
      PyTorch's own start, drawn from the global RNG in the order seed_reference.py draws it:
      torch.manual_seed(SEED); LeNet() (the default init); then, per epoch, the training
      DataLoader(shuffle=True)'s order (its iterator draws a base seed, then RandomSampler
      draws the seed of its randperm) and the test DataLoader's iterator (one base-seed draw).
      Writes DIR/init.safetensors (the state_dict) and DIR/orders.safetensors (I32 [E, N]).
  pytorch_crosscheck.py train DIR DATA THREADS DETAIL_STEPS MEAN STD
      Trains from DIR/init.safetensors over DIR/orders.safetensors (I32 [E, N]: row e is the
      order of epoch e + 1) on DATA/{train,test}.safetensors (images U8 [N,28,28], labels U8
      [N], as `deno task download` writes them), normalized as (pixel / 255 - MEAN) / STD (the
      data file's own mean and std, which our side uses too). Writes DIR/pytorch.json (per epoch: every
      step's loss and correct count, train and test loss and accuracy) and
      DIR/pytorch_detail.safetensors: for each of the first DETAIL_STEPS steps k (from 1),
      step<k>.x, step<k>.logits, step<k>.loss, step<k>.grad.<name> and step<k>.state.<name>
      (the state_dict after the step, num_batches_tracked left out).

Reads and writes safetensors with the standard library and torch only
(tests/pytorch/seed_models.py)."""
import json
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

# The seed's LeNet and the safetensors reader and writer, shared with the checkpoint test.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pytorch"))
from seed_models import LeNet, read_safetensors, write_safetensors  # noqa: E402

BATCH_SIZE = 32


def normalized(images, mean, std):
    """torchvision's ToTensor (float32 / 255) then Normalize((mean,), (std,)), in float32."""
    x = images.to(torch.float32).div(255).unsqueeze(1)
    return x.sub_(torch.tensor([mean], dtype=torch.float32)[:, None, None]) \
        .div_(torch.tensor([std], dtype=torch.float32)[:, None, None])


def init(seed, epochs, out, data):
    n_train = len(read_safetensors(f"{data}/train.safetensors")["labels"])
    n_test = len(read_safetensors(f"{data}/test.safetensors")["labels"])
    torch.manual_seed(seed)
    model = LeNet()
    # Index datasets stand in for MNIST: the loaders draw from the global RNG exactly as the
    # seed's do (num_workers changes where batches are made, not what is drawn).
    train_loader = DataLoader(range(n_train), batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(range(n_test), batch_size=BATCH_SIZE, shuffle=False)
    orders = []
    for _ in range(epochs):
        orders.append(torch.cat(list(train_loader)))
        for _ in test_loader:
            pass
    write_safetensors(f"{out}/init.safetensors", model.state_dict())
    write_safetensors(f"{out}/orders.safetensors",
                      {"orders": torch.stack(orders).to(torch.int32)})


def evaluate(model, images, labels, loss_fn):
    """The seed's test pass: batches of 32 in order, mean of the per-batch mean losses."""
    model.eval()
    total, correct, batches = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(labels), BATCH_SIZE):
            out = model(images[i:i + BATCH_SIZE])
            total += loss_fn(out, labels[i:i + BATCH_SIZE]).item()
            correct += (out.argmax(1) == labels[i:i + BATCH_SIZE]).sum().item()
            batches += 1
    return total / batches, 100 * correct / len(labels)


def train(directory, data, threads, detail_steps, mean, std):
    torch.set_num_threads(threads)
    state = read_safetensors(f"{directory}/init.safetensors")
    orders = read_safetensors(f"{directory}/orders.safetensors")["orders"].to(torch.int64)
    train_split = read_safetensors(f"{data}/train.safetensors")
    test_split = read_safetensors(f"{data}/test.safetensors")
    images = normalized(train_split["images"], mean, std)
    labels = train_split["labels"].to(torch.int64)
    test_images = normalized(test_split["images"], mean, std)
    test_labels = test_split["labels"].to(torch.int64)

    model = LeNet()
    model.load_state_dict(state, strict=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    detail, step = {}, 0
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "epochs": []}
    for order in orders:
        model.train()
        t0 = time.time()
        losses, corrects = [], []
        for b in range(0, len(order), BATCH_SIZE):
            idx = order[b:b + BATCH_SIZE]
            x, y = images[idx], labels[idx]
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            corrects.append((out.argmax(1) == y).sum().item())
            if step <= detail_steps:
                k = f"step{step}"
                detail[f"{k}.x"] = x.clone()
                detail[f"{k}.logits"] = out.detach().clone()
                detail[f"{k}.loss"] = loss.detach().reshape(1).clone()
                for name, p in model.named_parameters():
                    detail[f"{k}.grad.{name}"] = p.grad.clone()
                for name, t in model.state_dict().items():
                    if t.dtype == torch.float32:
                        detail[f"{k}.state.{name}"] = t.clone()
        seconds = time.time() - t0
        test_loss, test_acc = evaluate(model, test_images, test_labels, loss_fn)
        result["epochs"].append({
            "losses": losses, "correct": corrects,
            "train_loss": sum(losses) / len(losses),
            "train_acc": 100 * sum(corrects) / len(order),
            "test_loss": test_loss, "test_acc": test_acc, "seconds": round(seconds, 2)})
    write_safetensors(f"{directory}/pytorch_detail.safetensors", detail)
    with open(f"{directory}/pytorch.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "init":
        init(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 8 and sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
              float(sys.argv[6]), float(sys.argv[7]))
    else:
        sys.exit(__doc__)
