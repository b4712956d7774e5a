"""Reference PyTorch versions of PyMIC's UNet3D (v0.5 names) and FMUNet, written from the misfm spec
(section 1.9) for the parity test in baselines.test.ts.

usage: python3 baselines_ref.py '<json config>' <out_dir>
Writes <out_dir>/state_dict.pt (torch.save of the state dict), input.bin and out<i>.bin (float32 LE),
and prints a JSON line with the output shapes.
"""
import json
import sys

import torch
import torch.nn as nn

cfg = json.loads(sys.argv[1])
out_dir = sys.argv[2]


def norm3d(c, kind):
    return nn.BatchNorm3d(c) if kind == 'batch_norm' else nn.InstanceNorm3d(c, affine=True)


class UConvBlock(nn.Module):
    def __init__(self, cin, cout, p, kind):
        super().__init__()
        self.conv_conv = nn.Sequential(
            nn.Conv3d(cin, cout, 3, padding=1), norm3d(cout, kind), nn.LeakyReLU(), nn.Dropout(p),
            nn.Conv3d(cout, cout, 3, padding=1), norm3d(cout, kind), nn.LeakyReLU())

    def forward(self, x):
        return self.conv_conv(x)


class UDown(nn.Module):
    def __init__(self, cin, cout, p, kind):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool3d(2), UConvBlock(cin, cout, p, kind))

    def forward(self, x):
        return self.maxpool_conv(x)


class UUp(nn.Module):
    def __init__(self, c_coarse, c_skip, cout, p, mode, kind):
        super().__init__()
        self.mode = mode
        if mode == 'transconv':
            self.up = nn.ConvTranspose3d(c_coarse, c_skip, 2, stride=2)
        else:
            self.conv1x1 = nn.Conv3d(c_coarse, c_skip, 1)
            self.up = nn.Upsample(scale_factor=2, mode=mode, align_corners=True if mode == 'trilinear' else None)
        self.conv = UConvBlock(2 * c_skip, cout, p, kind)

    def forward(self, coarse, skip):
        if self.mode != 'transconv':
            coarse = self.conv1x1(coarse)
        return self.conv(torch.cat([skip, self.up(coarse)], dim=1))


class UEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        f, d = c['featureChns'], c['dropout']
        self.n = len(f)
        self.in_conv = UConvBlock(c['inChannels'], f[0], d[0], c['normType'])
        for i in range(1, len(f)):
            setattr(self, 'down%d' % i, UDown(f[i - 1], f[i], d[i], 'batch_norm' if i == 4 else c['normType']))

    def forward(self, x):
        feats = [self.in_conv(x)]
        for i in range(1, self.n):
            feats.append(getattr(self, 'down%d' % i)(feats[-1]))
        return feats


class UDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        f, d = c['featureChns'], c['dropout']
        self.n = len(f)
        for lvl in range(len(f) - 1, 0, -1):
            setattr(self, 'up%d' % (5 - lvl), UUp(f[lvl], f[lvl - 1], f[lvl - 1], d[lvl - 1], c['upMode'], c['normType']))
        self.out_conv = nn.Conv3d(f[0], c['classNum'], 1)
        self.ms = c['multiscalePred']
        if self.ms:
            for i in range(1, 4):
                setattr(self, 'out_conv%d' % i, nn.Conv3d(f[i], c['classNum'], 1))

    def forward(self, feats):
        dec = {self.n - 1: feats[-1]}
        cur = feats[-1]
        for lvl in range(self.n - 1, 0, -1):
            cur = getattr(self, 'up%d' % (5 - lvl))(cur, feats[lvl - 1])
            dec[lvl - 1] = cur
        outs = [self.out_conv(cur)]
        if self.ms:
            outs += [getattr(self, 'out_conv%d' % i)(dec[i]) for i in range(1, 4)]
        return outs


class UNet3D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder = UEncoder(c)
        self.decoder = UDecoder(c)

    def forward(self, x):
        return self.decoder(self.encoder(x))


KNL = {2: (1, 3, 3), 3: 3}
PAD = {2: (0, 1, 1), 3: 1}
FAC = {2: (1, 2, 2), 3: 2}
LEVEL_DIMS = {0: (3, 3), 1: (2, 3), 2: (2, 2)}


def pre_act(cin, cout, dim, stride=1, p=None):
    layers = [nn.InstanceNorm3d(cin, affine=True), nn.LeakyReLU()]
    if p is not None:
        layers.append(nn.Dropout(p))
    layers.append(nn.Conv3d(cin, cout, KNL[dim], padding=PAD[dim], stride=stride))
    return nn.Sequential(*layers)


class ResConv(nn.Module):
    def __init__(self, c, dim, p, depth):
        super().__init__()
        self.conv_list = nn.ModuleList([pre_act(c, c, dim, p=p) for _ in range(depth)])

    def forward(self, x):
        for unit in self.conv_list:
            x = unit(x) + x
        return x


class FMDown(nn.Module):
    def __init__(self, cin, cout, dim):
        super().__init__()
        self.down = pre_act(cin, cout, dim, stride=FAC[dim])

    def forward(self, x):
        return self.down(x)


class FMUp(nn.Module):
    def __init__(self, c_coarse, c_skip, cout, dim):
        super().__init__()
        self.up = nn.Sequential(nn.InstanceNorm3d(c_coarse, affine=True), nn.LeakyReLU(), nn.Conv3d(c_coarse, c_skip, 1),
                                nn.Upsample(scale_factor=FAC[dim], mode='trilinear', align_corners=True))
        self.conv = pre_act(2 * c_skip, cout, dim)

    def forward(self, coarse, skip):
        return self.conv(torch.cat([skip, self.up(coarse)], dim=1))


class FMEncoder(nn.Module):
    def __init__(self, c, dims):
        super().__init__()
        f = c['featureChns']
        for i in range(5):
            setattr(self, 'en_conv%d' % i, ResConv(f[i], dims[i], 0 if i < 2 else c['dropout'], c['depth']))
        for i in range(4):
            setattr(self, 'down%d' % i, FMDown(f[i], f[i + 1], dims[i]))

    def forward(self, x):
        feats = [self.en_conv0(x)]
        for i in range(1, 5):
            feats.append(getattr(self, 'en_conv%d' % i)(getattr(self, 'down%d' % (i - 1))(feats[-1])))
        return feats


class FMDecoder(nn.Module):
    def __init__(self, c, dims):
        super().__init__()
        f = c['featureChns']
        for i in range(4):
            setattr(self, 'upcat%d' % i, FMUp(f[i + 1], f[i], f[i], dims[i]))
        for i in range(5):
            setattr(self, 'de_conv%d' % i, ResConv(f[i], dims[i], 0 if i < 2 else c['dropout'], c['depth']))

    def forward(self, feats):
        cur = self.de_conv4(feats[4])
        maps = []
        for i in range(3, -1, -1):
            cur = getattr(self, 'de_conv%d' % i)(getattr(self, 'upcat%d' % i)(cur, feats[i]))
            maps.insert(0, cur)
        return maps


class FMUNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        d0, d1 = LEVEL_DIMS[c['resMode']]
        dims = [d0, d1, 3, 3, 3]
        self.project = nn.Conv3d(c['inChannels'], c['featureChns'][0], KNL[d0], padding=PAD[d0])
        self.encoder = FMEncoder(c, dims)
        self.decoder = FMDecoder(c, dims)
        self.out_layers = nn.ModuleList([pre_act(c['featureChns'][i], c['classNum'], dims[i]) for i in range(4)])
        self.ms = c['multiscalePred']

    def forward(self, x):
        maps = self.decoder(self.encoder(self.project(x)))
        return [self.out_layers[i](maps[i]) for i in range(4 if self.ms else 1)]


torch.manual_seed(0)
net = UNet3D(cfg) if cfg['name'] == 'unet3d' else FMUNet(cfg)
with torch.no_grad():
    # Make normalisation layers matter: random affine and running statistics.
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm3d, nn.InstanceNorm3d)) and m.weight is not None:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
net.eval()
torch.manual_seed(1)
x = torch.randn(cfg['inputShape'])
with torch.no_grad():
    outs = net(x)
torch.save(net.state_dict(), out_dir + '/state_dict.pt')
x.numpy().astype('<f4').tofile(out_dir + '/input.bin')
for i, o in enumerate(outs):
    o.numpy().astype('<f4').tofile(out_dir + '/out%d.bin' % i)
print(json.dumps({'shapes': [list(o.shape) for o in outs], 'params': sum(p.numel() for p in net.parameters())}))
