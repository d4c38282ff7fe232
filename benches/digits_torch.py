"""PyTorch reference for the digit CNN's training speed: the `mnist` preset (conv32k3,
bn, relu, pool2, conv64k3, bn, relu, pool2, flatten, dropout 0.25, dense128, relu,
dropout 0.5, dense10), Adam at 1e-3, batch 64, no augmentation, on the first N MNIST
training images; prints training images per second for each epoch.

Usage: python digits_torch.py MNIST_DIR N EPOCHS THREADS
"""
import struct, sys, time

import torch
import torch.nn as nn

mnist, n, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(42)

def idx(path):
    data = open(path, "rb").read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(count, 1, rows, cols)
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()

images = idx(f"{mnist}/train-images-idx3-ubyte")[:n].float() / 255.0
labels = idx(f"{mnist}/train-labels-idx1-ubyte")[:n]
images = (images - images.mean()) / images.std()

model = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.25), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(128, 10),
)
print("parameters", sum(p.numel() for p in model.parameters()))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(epochs):
    order = torch.randperm(n)
    start = time.perf_counter()
    model.train()
    for i in range(0, n, 64):
        batch = order[i:i + 64]
        opt.zero_grad()
        loss = loss_fn(model(images[batch]), labels[batch])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    print(f"epoch {epoch + 1}: {n / seconds:.0f} images/s ({seconds:.1f} s), last loss {loss.item():.4f}")
