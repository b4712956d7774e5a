"""Oracle for test/infer/sliding-window.test.ts: PyMIC's Inferer sliding window (HEAD 8bcebd6,
pymic/net_run/infer_func.py, single-output branch, as described in misfm-spec 3.2) in plain
PyTorch, so the TypeScript reference path can be compared with the real loop semantics: W-outer /
D-inner clamped starts with duplicates kept, a float64 Gaussian map (sigma = size/8, truncate 4,
not rescaled) multiplied into float32 logits, out/weight at the end.

usage: python3 sliding_window_ref.py <net> <image.bin> D,H,W <window> <stride> <out.bin>
  net = pctnet:<fixture_dir>   PCT-Net (bench/pctnet_ref.py) with <fixture_dir>/state_dict.pt, eval mode
        conv:<weights.bin>:<inC>:<K>   sin(conv3d(x, w, b, padding 1)) * 3, w then b as float32
Prints one JSON line.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_1d(n, scale=1.0 / 8):
    sigma = n * scale
    r = int(4 * sigma + 0.5)
    taps = np.array([math.exp(-x * x / (2 * sigma * sigma)) for x in range(-r, r + 1)])
    k = np.zeros(n)
    c = n // 2
    for i in range(n):
        x = i - c
        if abs(x) <= r:
            k[i] = math.exp(-x * x / (2 * sigma * sigma)) / taps.sum()
    return k


def gaussian_map(size):
    a, b, c = (gaussian_1d(s) for s in size)
    return a[:, None, None] * b[None, :, None] * c[None, None, :]


def starts(img, win, stride):
    out = []
    for w in range(0, img[2], stride[2]):
        for h in range(0, img[1], stride[1]):
            for d in range(0, img[0], stride[0]):
                out.append([min(d, img[0] - win[0]), min(h, img[1] - win[1]), min(w, img[2] - win[2])])
    return out


def make_net(spec):
    kind, _, rest = spec.partition(':')
    if kind == 'pctnet':
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, '..', '..', 'bench'))
        from pctnet_ref import PCTNet  # noqa: E402
        meta = json.load(open(os.path.join(rest, 'tensors.json')))
        net = PCTNet(meta['meta']['network_params'])
        net.load_state_dict(torch.load(os.path.join(rest, 'state_dict.pt')))
        net.eval()
        return lambda x: net(x)[0]
    path, cin, k = rest.split(':')
    cin, k = int(cin), int(k)
    flat = torch.from_numpy(np.fromfile(path, dtype='<f4'))
    n = k * cin * 27
    w, b = flat[:n].view(k, cin, 3, 3, 3), flat[n:n + k]
    return lambda x: torch.sin(F.conv3d(x, w, b, padding=1)) * 3


def main():
    net_spec, image_file, shape, win, stride, out_file = sys.argv[1:7]
    shape = [int(v) for v in shape.split(',')]
    win = [int(v) for v in win.split(',')]
    stride = [int(v) for v in stride.split(',')]
    torch.set_num_threads(1)
    net = make_net(net_spec)
    image = torch.from_numpy(np.fromfile(image_file, dtype='<f4')).view([1, -1] + shape)
    temp_w = torch.from_numpy(gaussian_map(win))  # float64, as PyMIC's numpy map
    output, weight = None, torch.zeros([1, 1] + shape)
    cache = {}
    with torch.no_grad():
        for c0 in starts(shape, win, stride):
            key = tuple(c0)
            if key not in cache:  # a duplicate start gives the same window: run the net once
                cache[key] = net(image[:, :, c0[0]:c0[0] + win[0], c0[1]:c0[1] + win[1], c0[2]:c0[2] + win[2]].contiguous())
            out = cache[key]
            if output is None:
                output = torch.zeros([1, out.shape[1]] + shape)
            sl = (slice(None), slice(None)) + tuple(slice(c0[d], c0[d] + win[d]) for d in range(3))
            output[sl] += out[0] * temp_w
            weight[sl] += temp_w
    result = (output / weight).float().contiguous()
    result.numpy().astype('<f4').tofile(out_file)
    print(json.dumps({'shape': list(result.shape), 'windows': len(starts(shape, win, stride)), 'distinct': len(cache)}))


if __name__ == '__main__':
    main()
