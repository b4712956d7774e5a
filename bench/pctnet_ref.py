"""PCT-Net in plain PyTorch, written from misfm's spec (reference/misfm-spec.md, section 1) with
the reference module names, for timing comparisons in bench/pctnet.ts and as a fixture check.

usage:
  python3 pctnet_ref.py check <fixture_dir>              # parity with shared/fixtures/pctnet_small
  python3 pctnet_ref.py bench <eval|train> <reps> <threads> # paper config at [1,1,64,128,128]
Prints one JSON line.
"""
import json
import os
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def kern(dim):
    return ((1, 3, 3), (0, 1, 1)) if dim == 2 else (3, 1)


def fac(dim):
    return (1, 2, 2) if dim == 2 else 2


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, dim, p):
        super().__init__()
        k, pad = kern(dim)
        self.conv_conv = nn.Sequential(nn.BatchNorm3d(cin), nn.PReLU(), nn.Conv3d(cin, cout, k, padding=pad),
                                       nn.BatchNorm3d(cout), nn.PReLU(), nn.Dropout(p), nn.Conv3d(cout, cout, k, padding=pad))

    def forward(self, x):
        return self.conv_conv(x)


class DownSample(nn.Module):
    def __init__(self, cin, cout, down_dim, conv_dim):
        super().__init__()
        k, pad = kern(conv_dim)
        self.pool = nn.MaxPool3d(fac(down_dim))
        self.conv = nn.Sequential(nn.BatchNorm3d(cin), nn.PReLU(), nn.Conv3d(cin, cout, k, padding=pad))

    def forward(self, x):
        return self.conv(self.pool(x))


class ConvLayer(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.BatchNorm3d(cin), nn.PReLU(), nn.Conv3d(cin, cout, 1))

    def forward(self, x):
        return self.conv(x)


class UpCatBlock(nn.Module):
    def __init__(self, cl, ch, up_dim, conv_dim):
        super().__init__()
        k, pad = kern(conv_dim)
        self.up = nn.Sequential(nn.BatchNorm3d(ch), nn.PReLU(), nn.ConvTranspose3d(ch, cl, fac(up_dim), stride=fac(up_dim)))
        self.conv = nn.Sequential(nn.BatchNorm3d(2 * cl), nn.PReLU(), nn.Conv3d(2 * cl, cl, k, padding=pad))

    def forward(self, xl, xh):
        return self.conv(torch.cat([xl, self.up(xh)], 1))


def partition(x, ws):
    b, s, h, w, c = x.shape
    x = x.view(b, s // ws, ws, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, ws ** 3, c)


def unpartition(win, ws, s, h, w):
    c = win.shape[-1]
    b = win.shape[0] // ((s // ws) * (h // ws) * (w // ws))
    x = win.view(b, s // ws, h // ws, w // ws, ws, ws, ws, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, s, h, w, c)


def rel_index(ws):
    r = torch.arange(ws)
    c = torch.stack(torch.meshgrid(r, r, r, indexing='ij')).flatten(1)
    d = (c[:, :, None] - c[:, None, :]) + (ws - 1)
    return d[0] * (3 * ws - 1) + d[1] * (2 * ws - 1) + d[2]


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads, attn_drop, proj_drop):
        super().__init__()
        self.ws, self.heads, self.scale = ws, heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 3, heads))
        self.register_buffer('relative_position_index', rel_index(ws))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def forward(self, x, mask):
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        attn = self.attn_drop(attn.softmax(-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop):
        super().__init__()
        self.fc1, self.act, self.fc2, self.drop = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        m = (keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype)).floor_()
        return x.div(keep) * m


class SwinBlock(nn.Module):
    def __init__(self, dim, res, heads, ws, shift, drop, attn_drop):
        super().__init__()
        if min(res) <= ws:
            ws, shift = min(res), 0
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads, attn_drop, drop)
        self.drop_path = DropPath(0.2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, drop)

    def forward(self, x, mask):
        b, l, c = x.shape
        s, h, w = self.res
        ws, sh = self.ws, self.shift
        sp, hp, wp = [math.ceil(v / ws) * ws for v in (s, h, w)]
        y = F.pad(self.norm1(x).view(b, s, h, w, c), (0, 0, 0, wp - w, 0, hp - h, 0, sp - s))
        if sh > 0:
            y = torch.roll(y, (-sh,) * 3, (1, 2, 3))
        y = unpartition(self.attn(partition(y, ws), mask if sh > 0 else None), ws, sp, hp, wp)
        if sh > 0:
            y = torch.roll(y, (sh,) * 3, (1, 2, 3))
        y = y[:, :s, :h, :w].contiguous().view(b, l, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def shift_mask(res, ws, shift):
    sp, hp, wp = [math.ceil(v / ws) * ws for v in res]
    img = torch.zeros(1, sp, hp, wp, 1)
    sl = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for a in sl:
        for b in sl:
            for c in sl:
                img[:, a, b, c] = cnt
                cnt += 1
    mw = partition(img, ws).squeeze(-1)
    d = mw[:, None, :] - mw[:, :, None]
    return d.masked_fill(d != 0, -100.0).masked_fill(d == 0, 0.0)


class BasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, ws, drop, attn_drop):
        super().__init__()
        self.res, self.ws = res, ws
        self.blocks = nn.ModuleList([SwinBlock(dim, res, heads, ws, 0 if i % 2 == 0 else ws // 2, drop, attn_drop) for i in range(depth)])
        self.mask = shift_mask(res, ws, ws // 2) if any(b.shift > 0 for b in self.blocks) else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x, self.mask)
        return x


class ConvTransBlock(nn.Module):
    def __init__(self, chns, res, depth, heads, ws, drop):
        super().__init__()
        self.conv = ConvBlock(chns, chns, 3, drop)
        self.trans = BasicLayer(chns, res, depth, heads, ws, drop, drop)
        self.norm_layer = nn.LayerNorm(chns)
        self.pos_drop = nn.Dropout(drop)

    def forward(self, x):
        b, c, s, h, w = x.shape
        x1 = self.conv(x)
        t = self.trans(self.pos_drop(x.flatten(2).transpose(1, 2).contiguous()))
        return x1 + t.view(b, s, h, w, c).permute(0, 4, 1, 2, 3).contiguous()


class PyramidConvTrans(nn.Module):
    def __init__(self, r2, ft, drop, depths, heads, wss, ncls):
        super().__init__()
        r3 = [v // 2 for v in r2]
        r4 = [v // 2 for v in r3]
        self.down3, self.down4 = DownSample(ft[0], ft[1], 3, 3), DownSample(ft[1], ft[2], 3, 3)
        self.up3, self.up4 = UpCatBlock(ft[0], ft[1], 3, 3), UpCatBlock(ft[1], ft[2], 3, 3)
        lv = lambda i, r: ConvTransBlock(ft[i], r, depths[i], heads[i], wss[i], drop[i])
        self.convtrans_e2, self.convtrans_d2 = lv(0, r2), lv(0, r2)
        self.convtrans_e3, self.convtrans_d3 = lv(1, r3), lv(1, r3)
        self.convtrans_e4 = lv(2, r4)
        self.out_conv2, self.out_conv3 = ConvLayer(ft[0], ncls), ConvLayer(ft[1], ncls)

    def forward(self, x):
        x2 = self.convtrans_e2(x)
        x3 = self.convtrans_e3(self.down3(x2))
        x4 = self.convtrans_e4(self.down4(x3))
        xd3 = self.convtrans_d3(self.up4(x3, x4))
        xd2 = self.convtrans_d2(self.up3(x2, xd3))
        return xd2, self.out_conv2(xd2), self.out_conv3(xd3)


MODES = {0: ((4, 4, 4), (3, 3)), 1: ((2, 4, 4), (2, 3)), 2: ((1, 4, 4), (2, 2))}


class PatchEmbedding(nn.Module):
    def __init__(self, cin, ft, dims, drop):
        super().__init__()
        k, pad = kern(dims[0])
        self.proj = nn.Conv3d(cin, ft[0], k, padding=pad)
        self.conv0, self.conv1 = ConvBlock(ft[0], ft[0], dims[0], drop[0]), ConvBlock(ft[1], ft[1], dims[1], drop[1])
        self.down1, self.down2 = DownSample(ft[0], ft[1], dims[0], dims[1]), DownSample(ft[1], ft[2], dims[1], 3)

    def forward(self, x):
        x0 = self.conv0(self.proj(x))
        x1 = self.conv1(self.down1(x0))
        return x0, x1, self.down2(x1)


class PredictionHead(nn.Module):
    def __init__(self, ft, dims, drop, ncls):
        super().__init__()
        self.up1, self.up2 = UpCatBlock(ft[0], ft[1], dims[0], dims[0]), UpCatBlock(ft[1], ft[2], dims[1], dims[1])
        self.conv0, self.conv1 = ConvBlock(ft[0], ft[0], dims[0], drop[0]), ConvBlock(ft[1], ft[1], dims[1], drop[1])
        self.out_conv0, self.out_conv1 = ConvLayer(ft[0], ncls), ConvLayer(ft[1], ncls)

    def forward(self, x0, x1, xd2):
        xd1 = self.conv1(self.up2(x1, xd2))
        xd0 = self.conv0(self.up1(x0, xd1))
        return self.out_conv0(xd0), self.out_conv1(xd1)


class PCTNet(nn.Module):
    def __init__(self, p):
        super().__init__()
        ft, drop, self.mode = p['feature_chns'], p['dropout'], p['resolution_mode']
        scale = MODES[self.mode][0]
        r2 = [p['input_size'][i] // scale[i] for i in range(3)]
        self.embeddings = nn.ModuleList([PatchEmbedding(p['in_chns'], ft[:3], MODES[m][1], drop) for m in range(3)])
        self.pyramid_ct = PyramidConvTrans(r2, ft[2:], drop[2:], p['depths'], p['num_heads'], p['window_sizes'], p['class_num'])
        self.pred_heads = nn.ModuleList([PredictionHead(ft[:3], MODES[m][1], drop, p['class_num']) for m in range(3)])

    def forward(self, x):
        x0, x1, x2 = self.embeddings[self.mode](x)
        xd2, o2, o3 = self.pyramid_ct(x2)
        o0, o1 = self.pred_heads[self.mode](x0, x1, xd2)
        return [o0, o1, o2, o3]


PAPER = {'in_chns': 1, 'class_num': 5, 'input_size': [64, 128, 128], 'feature_chns': [24, 48, 128, 256, 512],
         'dropout': [0, 0, 0.2, 0.2, 0.2], 'depths': [2, 2, 2], 'num_heads': [4, 8, 16], 'window_sizes': [6, 6, 6], 'resolution_mode': 1}
# misfm's pctnet-small preset (the parity fixture's layout)
SMALL = dict(PAPER, input_size=[32, 64, 64], feature_chns=[8, 16, 32, 64, 128])
CONFIGS = {'pctnet-paper': PAPER, 'pctnet-small': SMALL}


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main():
    cmd = sys.argv[1]
    if cmd == 'check':
        d = sys.argv[2]
        meta = json.load(open(d + '/tensors.json'))
        net = PCTNet(meta['meta']['network_params'])
        net.load_state_dict(torch.load(d + '/state_dict.pt'))
        net.eval()
        x = torch.from_numpy(__import__('numpy').fromfile(d + '/input.bin', dtype='<f4')).view(meta['tensors']['input']['shape'])
        with torch.no_grad():
            outs = net(x)
        diffs = []
        for i, o in enumerate(outs):
            ref = torch.from_numpy(__import__('numpy').fromfile(d + '/out%d.bin' % i, dtype='<f4')).view(o.shape)
            diffs.append(float((o - ref).abs().max()))
        print(json.dumps({'max_abs_diff': diffs}))
        return
    mode, reps, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = CONFIGS[sys.argv[5] if len(sys.argv) > 5 else 'pctnet-paper']
    warmup = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # PCTNET_REF_DEVICE=cuda times the same model on a GPU (bench/cuda-check.ts); default CPU.
    dev = torch.device(os.environ.get('PCTNET_REF_DEVICE', 'cpu'))
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    net = PCTNet(cfg).to(dev)
    x = torch.randn(1, 1, *cfg['input_size']).to(dev)
    times, cpu = [], []
    for r in range(1 - warmup, reps + 1):
        t0 = time.perf_counter()
        c0 = time.process_time()
        if mode == 'eval':
            net.eval()
            with torch.no_grad():
                outs = net(x)
        else:
            net.train()
            outs = net(x)
            loss = sum(o.square().mean() * 0.5 ** i for i, o in enumerate(outs))
            loss.backward()
            net.zero_grad(set_to_none=True)
        del outs
        sync()
        if r > 0:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(json.dumps({'impl': 'pytorch', 'mode': mode, 'seconds': times, 'cpu_seconds': cpu, 'peak_rss_gb': peak_rss_gb(),
                      'params': sum(p.numel() for p in net.parameters()), 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
