"""onnxruntime reference for `promptlab vision detect`: the same letterbox (bilinear resize
with antialiasing, grey 114 padding, centred), the same decoding and class-aware NMS,
timed over repeated runs on the same thread count. Prints JSON: boxes and median ms.

Usage: python detect_reference.py MODEL.onnx IMAGE THREADS REPEAT [MIN_CONF IOU]
"""
import json, statistics, sys, time

import numpy as np
import onnxruntime as ort
from PIL import Image

model, image_path, threads, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
min_conf = float(sys.argv[5]) if len(sys.argv) > 5 else 0.25
iou_threshold = float(sys.argv[6]) if len(sys.argv) > 6 else 0.45

options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
height, width = inp.shape[2], inp.shape[3]

def letterbox(img):
    w, h = img.size
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = img.resize((nw, nh), Image.BILINEAR)
    canvas = Image.new("RGB", (width, height), (114, 114, 114))
    px, py = (width - nw) // 2, (height - nh) // 2
    canvas.paste(resized, (px, py))
    x = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return x, scale, px, py

def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

image = Image.open(image_path).convert("RGB")
times = {"preprocess": [], "inference": [], "postprocess": []}
for _ in range(repeat):
    t0 = time.perf_counter()
    x, scale, px, py = letterbox(image)
    t1 = time.perf_counter()
    out = session.run(None, {inp.name: x})[0][0]
    t2 = time.perf_counter()
    scores = out[4:]
    cls = scores.argmax(0)
    conf = scores.max(0)
    keep = conf >= min_conf
    cands = []
    for i in np.nonzero(keep)[0]:
        cx, cy, w, h = out[0, i], out[1, i], out[2, i], out[3, i]
        cands.append((float(conf[i]), int(cls[i]), [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    cands.sort(key=lambda c: -c[0])
    kept = []
    for c in cands:
        if all(k[1] != c[1] or iou(k[2], c[2]) <= iou_threshold for k in kept):
            kept.append(c)
    boxes = [{"class_id": c[1], "confidence": c[0],
              "bbox": [float((c[2][0] - px) / scale), float((c[2][1] - py) / scale),
                       float((c[2][2] - px) / scale), float((c[2][3] - py) / scale)]} for c in kept]
    t3 = time.perf_counter()
    times["preprocess"].append((t1 - t0) * 1000)
    times["inference"].append((t2 - t1) * 1000)
    times["postprocess"].append((t3 - t2) * 1000)
print(json.dumps({"detections": boxes, "median_ms": {k: statistics.median(v) for k, v in times.items()}}))
