"""
VoCo step in plain PyTorch eager, for bench/voco.ts: MONAI 1.3.0's SwinTransformer (use_v2,
legacy PatchMerging, index[:n,:n] bias) + UnetrBasicBlock encoders + VoCo's pooled embedding, or
the PCT-Net encoder (bench/pctnet_ref.py), then the TPAMI head (projector with batch statistics,
replayed row-dropout mask, EMA teacher inside the step, intra/inter/reg) and AdamW(amsgrad=True).
Written from shared/reference/voco-spec.md (MONAI is not installed here). Loads the weights and
inputs misfm wrote, so both implementations run the same step on the same numbers.

  python3 bench/voco_ref.py DIR REPS THREADS [WARMUP]
"""
import json, resource, sys, time, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def win_size(size, ws, sh):
    w, s = list(ws), list(sh)
    for i in range(3):
        if size[i] <= ws[i]:
            w[i], s[i] = size[i], 0
    return w, s


def partition(x, w):
    b, d, h, ww, c = x.shape
    x = x.view(b, d // w[0], w[0], h // w[1], w[1], ww // w[2], w[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, w[0] * w[1] * w[2], c)


def reverse(win, w, b, d, h, ww):
    x = win.view(b, d // w[0], h // w[1], ww // w[2], w[0], w[1], w[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, ww, -1)


def compute_mask(dims, w, s):
    img = torch.zeros((1, *dims, 1))
    cnt = 0
    for a in slice(-w[0]), slice(-w[0], -s[0]), slice(-s[0], None):
        for b in slice(-w[1]), slice(-w[1], -s[1]), slice(-s[1], None):
            for c in slice(-w[2]), slice(-w[2], -s[2]), slice(-s[2], None):
                img[:, a, b, c, :] = cnt
                cnt += 1
    m = partition(img, w).squeeze(-1)
    m = m.unsqueeze(1) - m.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim, heads, w):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 3, heads))
        g = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), torch.arange(w), indexing='ij')).flatten(1)
        r = (g[:, :, None] - g[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer('relative_position_index', r[..., 0] * (2 * w - 1) ** 2 + r[..., 1] * (2 * w - 1) + r[..., 2])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] * self.scale) @ qkv[1].transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)].reshape(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.linear2(F.gelu(self.linear1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, w, shift):
        super().__init__()
        self.w, self.shift = [w] * 3, [shift] * 3
        self.norm1, self.attn, self.norm2, self.mlp = nn.LayerNorm(dim), WindowAttention(dim, heads, w), nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x, mask):
        b, d, h, ww, c = x.shape
        w, s = win_size((d, h, ww), self.w, self.shift)
        y = self.norm1(x)
        pd, ph, pw = [(w[i] - (d, h, ww)[i] % w[i]) % w[i] for i in range(3)]
        y = F.pad(y, (0, 0, 0, pw, 0, ph, 0, pd))
        _, dp, hp, wp, _ = y.shape
        shifted = any(v > 0 for v in s)
        if shifted:
            y = torch.roll(y, (-s[0], -s[1], -s[2]), (1, 2, 3))
        y = reverse(self.attn(partition(y, w), mask if shifted else None), w, b, dp, hp, wp)
        if shifted:
            y = torch.roll(y, (s[0], s[1], s[2]), (1, 2, 3))
        y = y[:, :d, :h, :ww, :].contiguous()
        x = x + y
        return x + self.mlp(self.norm2(x))


class Merging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.reduction, self.norm = nn.Linear(8 * dim, 2 * dim, bias=False), nn.LayerNorm(8 * dim)

    def forward(self, x):
        o = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
        return self.reduction(self.norm(torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in o], -1)))


class Layer(nn.Module):
    def __init__(self, dim, depth, heads, w):
        super().__init__()
        self.w, self.shift = [w] * 3, [w // 2] * 3
        self.blocks = nn.ModuleList([Block(dim, heads, w, 0 if i % 2 == 0 else w // 2) for i in range(depth)])
        self.downsample = Merging(dim)

    def forward(self, x):
        b, c, d, h, ww = x.shape
        w, s = win_size((d, h, ww), self.w, self.shift)
        x = x.permute(0, 2, 3, 4, 1)
        mask = compute_mask([int(np.ceil(v / w[i])) * w[i] for i, v in enumerate((d, h, ww))], w, s)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.downsample(x.view(b, d, h, ww, -1)).permute(0, 4, 1, 2, 3)


class Conv(nn.Module):
    def __init__(self, i, o, k):
        super().__init__()
        self.conv = nn.Conv3d(i, o, k, padding=k // 2, bias=False)

    def forward(self, x):
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1, self.conv2 = Conv(i, o, 3), Conv(o, o, 3)
        if i != o:
            self.conv3 = Conv(i, o, 1)

    def forward(self, x):
        y = F.instance_norm(self.conv2(F.leaky_relu(F.instance_norm(self.conv1(x)), 0.01)))
        r = F.instance_norm(self.conv3(x)) if hasattr(self, 'conv3') else x
        return F.leaky_relu(y + r, 0.01)


class Basic(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.layer = ResBlock(i, o)

    def forward(self, x):
        return self.layer(x)


class PatchEmbed(nn.Module):
    def __init__(self, fs):
        super().__init__()
        self.proj = nn.Conv3d(1, fs, 2, stride=2)


class SwinViT(nn.Module):
    def __init__(self, fs, w):
        super().__init__()
        self.patch_embed = PatchEmbed(fs)
        for i in range(4):
            setattr(self, 'layers%d' % (i + 1), nn.ModuleList([Layer(fs * 2 ** i, 2, [3, 6, 12, 24][i], w)]))
        for i in range(4):
            setattr(self, 'layers%dc' % (i + 1), nn.ModuleList([Basic(fs * 2 ** i, fs * 2 ** i)]))

    def forward(self, x):
        norm = lambda t: F.layer_norm(t.permute(0, 2, 3, 4, 1), [t.shape[1]]).permute(0, 4, 1, 2, 3)
        x = self.patch_embed.proj(x)
        out = [norm(x)]
        for i in range(4):
            x = getattr(self, 'layers%dc' % (i + 1))[0](x.contiguous())
            x = getattr(self, 'layers%d' % (i + 1))[0](x.contiguous())
            out.append(norm(x))
        return out


class SwinBackbone(nn.Module):
    def __init__(self, fs, w):
        super().__init__()
        self.swinViT = SwinViT(fs, w)
        self.encoder1, self.encoder2, self.encoder3 = Basic(1, fs), Basic(fs, fs), Basic(2 * fs, 2 * fs)
        self.encoder4, self.encoder10 = Basic(4 * fs, 4 * fs), Basic(16 * fs, 16 * fs)

    def forward(self, x):
        x = x.permute(0, 1, 4, 3, 2).contiguous()  # misfm (D,H,W) -> (X,Y,Z), axisOrder 'xyz'
        h = self.swinViT(x)
        maps = [self.encoder1(x), self.encoder2(h[0]), self.encoder3(h[1]), self.encoder4(h[2]), self.encoder10(h[4])]
        return torch.cat([F.adaptive_avg_pool3d(m, 1).flatten(1) for m in maps], 1)


class PctBackbone(nn.Module):
    def __init__(self, p):
        super().__init__()
        from pctnet_ref import PCTNet
        net = PCTNet(p)
        self.mode = p['resolution_mode']
        for name, child in net.named_children():
            self.add_module(name, child)

    def forward(self, x):
        p = self.pyramid_ct
        x0, x1, x2 = self.embeddings[self.mode](x)
        e2 = p.convtrans_e2(x2)
        e3 = p.convtrans_e3(p.down3(e2))
        e4 = p.convtrans_e4(p.down4(e3))
        return torch.cat([F.adaptive_avg_pool3d(m, 1).flatten(1) for m in (x0, x1, e2, e3, e4)], 1)


class Head(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        bn = lambda: nn.BatchNorm1d(h, affine=False, track_running_stats=False)
        self.layer1 = nn.Sequential(nn.Linear(i, h), bn(), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(h, h), bn(), nn.ReLU())
        self.layer3 = nn.Sequential(nn.Linear(h, o))

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(x)))


def assign(f, b):
    return F.relu(F.cosine_similarity(f.unsqueeze(1), b.unsqueeze(0), dim=2))


def ce(y, l):
    pos = (-y * torch.log(1 - (y - l).abs() + 1e-6)).sum() / (y.sum() + 1e-6)
    neg_lab = (y == 0).float()
    return pos + (neg_lab * -torch.log(1 - l + 1e-6)).sum() / (neg_lab.sum() + 1e-6)


def reg(b):
    k = b.shape[0]
    s = F.relu(F.cosine_similarity(b.unsqueeze(1), b.detach().unsqueeze(0), dim=2)) ** 2
    return (s * torch.triu(torch.ones(k, k), 1)).sum() / (k * (k - 1) / 2)


class VoCo(nn.Module):
    def __init__(self, backbone, dim, hidden):
        super().__init__()
        self.backbone, self.student, self.teacher = backbone, Head(dim, hidden, hidden), Head(dim, hidden, hidden)

    def step(self, x, y, keep, B, sw, K):
        emb = self.backbone(x)
        s = self.student(emb * keep.view(-1, 1) / 0.8)
        with torch.no_grad():
            for p, t in zip(self.student.parameters(), self.teacher.parameters()):
                t.mul_(0.9).add_(p, alpha=0.1)
            t_out = self.teacher(emb)
        intra = inter = rg = 0
        for i in range(B):
            j = (i + 1) % B
            sr, tr = s[i * sw:(i + 1) * sw], t_out[i * sw:(i + 1) * sw]
            base = lambda o, v: o[B * sw + v * K:B * sw + (v + 1) * K]
            intra = intra + ce(y[i], assign(sr, base(t_out, i)))
            inter = inter + ce(assign(tr, base(t_out, j)).detach(), assign(sr, base(s, j)))
            rg = rg + reg(base(s, i))
        return intra / B + inter / B + rg / B


def load_bin(path, shape, dtype='<f4'):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).copy()).view(shape)


def main():
    d, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    warmup = 0 if reps == 0 else int(sys.argv[4]) if len(sys.argv) > 4 else 1
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(d, 'config.json')))
    bb = SwinBackbone(cfg['fs'], cfg['window']) if cfg['backbone'] == 'swin' else PctBackbone(cfg['pct'])
    model = VoCo(bb, cfg['embeddingDim'], cfg['hidden'])
    model.load_state_dict(torch.load(os.path.join(d, 'weights.pt')), strict=True)
    B, sw, K = cfg['layout']
    x = load_bin(os.path.join(d, 'input.bin'), cfg['inputShape'])
    y = load_bin(os.path.join(d, 'labels.bin'), [B, sw, K])
    keep = load_bin(os.path.join(d, 'keep.bin'), [x.shape[0]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, amsgrad=True)  # VoCo's optimiser
    # As in bench/voco.ts: PCT-Net's hard-coded DropPath(0.2) off, so both sides compute the same step.
    for mod in model.modules():
        if type(mod).__name__ == 'DropPath':
            mod.eval()
    times, cpu, losses = [], [], []
    for r in range(warmup + max(reps, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model.step(x, y, keep, B, sw, K)
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if r >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(json.dumps({'impl': 'pytorch', 'seconds': times, 'cpu_seconds': cpu, 'losses': losses,
                      'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
