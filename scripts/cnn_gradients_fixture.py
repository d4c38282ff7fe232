"""Writes tests/fixtures/cnn-gradients.json: what PyTorch computes for small digit CNNs on
fixed weights and a fixed batch, as the reference for promptlab's hand-written forward and
backward passes (src/vision/network.rs). For each case: the layer list (promptlab's
`--layers` syntax), the weights under promptlab's tensor names, the images and labels;
then PyTorch's logits, mean softmax cross-entropy, the gradient of every parameter, the
batch-norm running statistics after the training-mode forward pass, and every parameter
after one optimizer step on those gradients.

The networks use every layer kind the CNN has: convolution (with and without padding),
batch norm in training mode (on images and on dense features), ReLU, max pooling (2 and
3, with a remainder), flatten (explicit, and implied by a dense layer after an image),
dropout (rate 0: PyTorch's random mask cannot be reproduced, so dropout's masking is
checked against finite differences in the Rust tests instead), dense layers and softmax
cross-entropy. The first case has the structure of the `mnist` preset at a size that
keeps the fixture small. PyTorch computes in float64 from float32-representable inputs,
so the reference carries no float32 rounding of its own.

    ~/.cache/promptlab/torch-venv/bin/python scripts/cnn_gradients_fixture.py
"""
import json
import pathlib
import re

import torch
import torch.nn as nn

CASES = [
    {
        "name": "mnist-structure",
        "layers": "conv4k3,bn,relu,pool2,conv6k3p1,bn,relu,pool2,flatten,drop0,dense16,relu,drop0",
        "input": [1, 12, 12],
        "batch": 6,
        "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
    },
    {
        "name": "odd-shapes",
        "layers": "conv5k5p2,relu,pool3,conv4k2,bn,relu,dense8,bn,relu",
        "input": [1, 11, 13],
        "batch": 5,
        "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
    },
    {
        # MobileNetV2's layer kinds: strided convolutions, 1×1 convolutions, depthwise
        # convolutions, ReLU6, a residual connection and global average pooling.
        "name": "mobilenet-parts",
        "layers": "conv8k3p1s2,bn,relu6,conv16k1,bn,relu6,dw3p1,bn,relu6,conv8k1,bn,res8,"
        "dw3p1s2,relu6,avgpool,dense12,relu",
        "input": [1, 13, 13],
        "batch": 4,
        "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
    },
]
CLASSES = 10


def parse(text):
    """promptlab's layer syntax: convCkK[pP][sS], dwK[pP][sS], bn, relu, relu6, poolN,
    avgpool, resN, dropR, flatten, denseN."""
    layers = []
    for item in text.split(","):
        if m := re.fullmatch(r"conv(\d+)k(\d+)(?:p(\d+))?(?:s(\d+))?", item):
            layers.append(("conv", int(m[1]), int(m[2]), int(m[3] or 0), int(m[4] or 1)))
        elif m := re.fullmatch(r"dw(\d+)(?:p(\d+))?(?:s(\d+))?", item):
            layers.append(("dw", int(m[1]), int(m[2] or 0), int(m[3] or 1)))
        elif m := re.fullmatch(r"res(\d+)", item):
            layers.append(("res", int(m[1])))
        elif item in ("bn", "relu", "relu6", "avgpool", "flatten"):
            layers.append((item,))
        elif m := re.fullmatch(r"pool(\d+)", item):
            layers.append(("pool", int(m[1])))
        elif m := re.fullmatch(r"drop([\d.]+)", item):
            layers.append(("drop", float(m[1])))
        elif m := re.fullmatch(r"dense(\d+)", item):
            layers.append(("dense", int(m[1])))
        else:
            raise ValueError(item)
    return layers


def build(layers, input_shape):
    """The network as (name or None, module) pairs, named `l{index}` as promptlab names its
    layers (the final dense layer to the classes is added, as promptlab does)."""
    c, h, w = input_shape
    flat = None
    modules = []
    for index, layer in enumerate(layers + [("dense", CLASSES)]):
        name = f"l{index}"
        kind = layer[0]
        if kind == "conv":
            _, out, k, p, s = layer
            modules.append((name, nn.Conv2d(c, out, k, padding=p, stride=s)))
            c, h, w = out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "dw":
            _, k, p, s = layer
            modules.append((name, nn.Conv2d(c, c, k, padding=p, stride=s, groups=c, bias=False)))
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "res":
            modules.append((name, Residual(index - layer[1])))
        elif kind == "relu6":
            modules.append((name, nn.ReLU6()))
        elif kind == "avgpool":
            modules.append((name, nn.AdaptiveAvgPool2d(1)))
            modules.append((None, nn.Flatten()))
            flat = c
        elif kind == "bn":
            modules.append((name, nn.BatchNorm2d(c) if flat is None else nn.BatchNorm1d(flat)))
        elif kind == "relu":
            modules.append((name, nn.ReLU()))
        elif kind == "pool":
            modules.append((name, nn.MaxPool2d(layer[1])))
            h, w = h // layer[1], w // layer[1]
        elif kind == "drop":
            modules.append((name, nn.Dropout(layer[1])))
        elif kind == "flatten":
            modules.append((name, nn.Flatten()))
            flat = c * h * w
        elif kind == "dense":
            if flat is None:
                modules.append((None, nn.Flatten()))
                flat = c * h * w
            modules.append((name, nn.Linear(flat, layer[1])))
            flat = layer[1]
    return modules


class Residual(nn.Module):
    """Adds the input of layer `source` (promptlab's `resN`, N layers back)."""

    def __init__(self, source):
        super().__init__()
        self.source = source


class Net(nn.Module):
    """The layers in order, each residual adding an earlier layer's input."""

    def __init__(self, modules):
        super().__init__()
        self.names = [name for name, _ in modules]
        self.layers = nn.ModuleList([module for _, module in modules])

    def forward(self, x):
        inputs = {}
        for name, module in zip(self.names, self.layers):
            if name is not None:
                inputs[int(name[1:])] = x
            x = x + inputs[module.source] if isinstance(module, Residual) else module(x)
        return x


def values(tensor):
    return [float(v) for v in tensor.detach().flatten().tolist()]


def run(case, generator):
    modules = build(parse(case["layers"]), case["input"])
    model = Net(modules).double()
    weights = {}
    with torch.no_grad():
        for name, module in modules:
            if name is None:
                continue
            for param_name, param in module.named_parameters():
                if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    # Away from 1 and 0, so that their gradients matter.
                    low = 0.5 if param_name == "weight" else -0.3
                    fresh = torch.rand(param.shape, generator=generator) * 0.6 + low
                else:
                    fan_in = param.shape[1:].numel() if param.dim() > 1 else module.weight.shape[1:].numel()
                    bound = fan_in ** -0.5
                    fresh = (torch.rand(param.shape, generator=generator) * 2 - 1) * bound
                # float32 values, so promptlab reads exactly the same weights.
                param.copy_(fresh.float().double())
                weights[f"{name}.{param_name}"] = values(param)
            for buffer_name, buffer in module.named_buffers():
                if buffer_name in ("running_mean", "running_var"):
                    weights[f"{name}.{buffer_name}"] = values(buffer)
    batch = case["batch"]
    images = torch.randn([batch] + case["input"], generator=generator).float().double()
    labels = torch.randint(0, CLASSES, (batch,), generator=generator)

    model.train()
    logits = model(images)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()

    named = {}
    for name, module in modules:
        if name is None:
            continue
        for param_name, param in module.named_parameters():
            named[f"{name}.{param_name}"] = param
    gradients = {name: values(param.grad) for name, param in named.items()}
    running = {}
    for name, module in modules:
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            running[f"{name}.running_mean"] = values(module.running_mean)
            running[f"{name}.running_var"] = values(module.running_var)

    spec = case["optimizer"]
    if spec["name"] == "adam":
        optimizer = torch.optim.Adam(named.values(), lr=spec["lr"])
    else:
        optimizer = torch.optim.AdamW(named.values(), lr=spec["lr"], weight_decay=spec["weight_decay"])
    optimizer.step()
    after_step = {name: values(param) for name, param in named.items()}

    return {
        "name": case["name"],
        "layers": case["layers"],
        "input": case["input"],
        "classes": CLASSES,
        "labels": labels.tolist(),
        "images": values(images),
        "weights": weights,
        "logits": values(logits),
        "loss": float(loss.detach()),
        "gradients": gradients,
        "running_after_forward": running,
        "optimizer": spec,
        "after_step": after_step,
    }


def main():
    generator = torch.Generator().manual_seed(19)
    fixture = {
        "generator": "scripts/cnn_gradients_fixture.py",
        "torch": torch.__version__,
        "cases": [run(case, generator) for case in CASES],
    }
    out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/cnn-gradients.json"
    out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
