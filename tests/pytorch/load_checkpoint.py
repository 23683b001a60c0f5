"""Loads one of our checkpoints into the seed's PyTorch LeNet (or LeNet5, as seed_reference.py
defines it) with strict=True and scores it on a test split stored by `deno task download`
(safetensors: images U8 [N,28,28], labels U8 [N]).
Prints JSON: {"loss": ..., "accuracy": ..., "tensors": n}. Reads safetensors with the standard
library and torch only (seed_models.py), so it needs no safetensors package.
usage: load_checkpoint.py MODEL.safetensors TEST.safetensors [lenet|lenet5]"""
import json, struct, sys
import torch
from torch import nn
from seed_models import LeNet, LeNet5, read_safetensors

state = read_safetensors(sys.argv[1])
test = read_safetensors(sys.argv[2])
model = LeNet5() if len(sys.argv) > 3 and sys.argv[3] == "lenet5" else LeNet()
model.load_state_dict(state, strict=True)
model.eval()
# The normalization the run trained with (recorded by train; older runs used the notebook's).
with open(sys.argv[1], "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    metadata = json.loads(f.read(n)).get("__metadata__", {})
mean, std = float(metadata.get("mean", 0.1307)), float(metadata.get("std", 0.3081))
images = (test["images"].float() / 255 - mean) / std
labels = test["labels"].long()
loss_fn = nn.CrossEntropyLoss()
total_loss, correct, batches = 0.0, 0, 0
with torch.no_grad():
    for i in range(0, len(labels), 32):
        out = model(images[i:i + 32].unsqueeze(1))
        total_loss += loss_fn(out, labels[i:i + 32]).item()
        correct += (out.argmax(1) == labels[i:i + 32]).sum().item()
        batches += 1
print(json.dumps({"loss": total_loss / batches, "accuracy": 100 * correct / len(labels), "tensors": len(state)}))
