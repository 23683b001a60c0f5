"""Loads one of our checkpoints into the seed's PyTorch LeNet (or LeNet5, as seed_reference.py
defines it) with strict=True and scores it on a test split stored by `deno task download`
(safetensors: images U8 [N,28,28], labels U8 [N]).
Prints JSON: {"loss": ..., "accuracy": ..., "tensors": n}. Reads safetensors with the standard
library and torch only, so it needs no safetensors package.
usage: load_checkpoint.py MODEL.safetensors TEST.safetensors [lenet|lenet5]"""
import json, struct, sys
import torch
from torch import nn

DTYPES = {"F32": torch.float32, "I64": torch.int64, "U8": torch.uint8}

def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=DTYPES[t["dtype"]]).reshape(t["shape"]) if raw else \
            torch.zeros(t["shape"], dtype=DTYPES[t["dtype"]])
    return out

class LeNet(nn.Module):  # the seed's model, as written there
    def __init__(self, input_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_channels, 16, kernel_size=4, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, 10))
    def forward(self, x):
        return self.classifier(self.features(x))

class LeNet5(nn.Module):  # seed_reference.py's classic LeNet-5, as written there
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))
    def forward(self, x):
        return self.classifier(self.features(x))

state = read_safetensors(sys.argv[1])
test = read_safetensors(sys.argv[2])
model = LeNet5() if len(sys.argv) > 3 and sys.argv[3] == "lenet5" else LeNet()
model.load_state_dict(state, strict=True)
model.eval()
images = (test["images"].float() / 255 - 0.1307) / 0.3081
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
