"""Interop oracle for test/io/checkpoint*.test.ts (run with /usr/bin/python3, which has torch 1.13).

Importing torch takes seconds, so one call does everything a test file needs. Usage:
  torch_interop.py JOB_JSON    with JOB_JSON an object of optional keys:
    "make_cases": DIR          torch.save / pickle / zip files the TS readers must decode, with
                               DIR/<case>.json holding the expected canonical value of each
    "summarize": [FILE...]     torch.load each FILE: canonical value plus tensor sums
    "weights_only": [FILE...]  the same with torch.load(weights_only=True)
    "read_safetensors": [FILE...]  strict independent parse of .safetensors files
  and prints one JSON object with the same keys holding the results (errors as {"error": "..."}).
  torch_interop.py big-state-dict FILE MB   a float32 state_dict of about MB megabytes (speed tests)

The canonical form is shared with the TS tests: dict -> {"dict": [[k, v], ...], "ordered": bool},
tuple -> {"tuple": [...]}, set -> {"set": sorted}, bytes -> {"bytes": hex},
int beyond 2**53 -> {"bigint": "..."}, non-finite float -> {"float": "nan"|"inf"|"-inf"},
tensor / ndarray -> {"tensor": {"dtype", "shape", "sha256"}} of the contiguous little-endian bytes.
"""
import collections
import hashlib
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

SAFE = 2 ** 53 - 1
NP_TO_TORCH = {'float32': 'float32', 'float64': 'float64', 'float16': 'float16', 'int64': 'int64', 'int32': 'int32',
               'int16': 'int16', 'int8': 'int8', 'uint8': 'uint8', 'bool': 'bool'}


def tensor_bytes(t):
    t = t.detach().reshape(-1).contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def canon(v, sums=None, path=''):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.generic):
        return canon(v.item(), sums, path)
    if isinstance(v, int):
        return v if -SAFE <= v <= SAFE else {'bigint': str(v)}
    if isinstance(v, float):
        if math.isnan(v):
            return {'float': 'nan'}
        if math.isinf(v):
            return {'float': 'inf' if v > 0 else '-inf'}
        return v
    if isinstance(v, (bytes, bytearray)):
        return {'bytes': bytes(v).hex()}
    if isinstance(v, torch.device):
        return str(v)
    if isinstance(v, torch.Tensor):
        if sums is not None:
            sums[path] = float(v.detach().double().sum()) if v.numel() else 0.0
        return {'tensor': {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape),
                           'sha256': hashlib.sha256(tensor_bytes(v)).hexdigest()}}
    if isinstance(v, np.ndarray):
        return {'tensor': {'dtype': NP_TO_TORCH[str(v.dtype)], 'shape': list(v.shape),
                           'sha256': hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}}
    if isinstance(v, dict):
        return {'dict': [[canon(k), canon(x, sums, f'{path}/{k}')] for k, x in v.items()],
                'ordered': type(v) is collections.OrderedDict}
    if isinstance(v, tuple):  # includes torch.Size
        return {'tuple': [canon(x, sums, f'{path}/{i}') for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [canon(x, sums, f'{path}/{i}') for i, x in enumerate(v)]
    if isinstance(v, (set, frozenset)):
        return {'set': sorted(canon(x) for x in v)}
    raise TypeError(f'no canonical form for {type(v)} at {path}')


def small_optimizer_state():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.BatchNorm3d(2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-5)
    net(torch.randn(1, 1, 4, 4, 4)).sum().backward()
    opt.step()
    return net.state_dict(), opt.state_dict()


def cases():
    """name -> (object, save kwargs)."""
    a = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    flat = torch.arange(20, dtype=torch.float64)
    views = collections.OrderedDict([
        ('base', a), ('transposed', a.transpose(0, 2)), ('strided', a[:, 1:, ::2]), ('row', a[1]),
        ('expanded', torch.arange(3.0).expand(4, 3)), ('offset', flat[5:17].view(3, 4)),
        ('offset_t', flat[2:14].view(3, 4).t()), ('permuted', torch.arange(120, dtype=torch.int16).reshape(2, 3, 4, 5).permute(3, 1, 0, 2)),
    ])
    param = torch.nn.Parameter(torch.linspace(-1, 1, 6).reshape(2, 3))
    dtypes = {
        'f16': torch.tensor([1.5, -2.25, 65504.0, 6e-5], dtype=torch.float16),
        'bf16': torch.tensor([1.5, -2.25, 3e38, 1e-30], dtype=torch.bfloat16),
        'bool': torch.tensor([[True, False], [False, True]]), 'u8': torch.arange(250, 256, dtype=torch.uint8),
        'i8': torch.tensor([-128, 0, 127], dtype=torch.int8), 'i16': torch.tensor([-32768, 32767], dtype=torch.int16),
        'i32': torch.tensor([-2 ** 31, 2 ** 31 - 1], dtype=torch.int32), 'i64': torch.tensor([-2 ** 63, 2 ** 63 - 1, 5]),
        'f64': torch.tensor([math.pi, -0.0, float('inf')], dtype=torch.float64),
        'scalar_f': torch.tensor(3.5), 'scalar_i64': torch.tensor(7), 'empty': torch.zeros(0, 3),
        'param': param, 'requires_grad': torch.ones(2, requires_grad=True),
        'f16_t': torch.arange(6, dtype=torch.float16).reshape(2, 3).t(),
    }
    model_sd, optim_sd = small_optimizer_state()
    nested = {
        'model_state_dict': model_sd, 'optimizer_state_dict': optim_sd, 'iteration': 12,
        'config': {'lr': 0.001, 'patch': [32, 64, 64], 'name': 'PCTNet', 'flags': (True, False, None)},
        'ints': {0: 'zero', 1: [1, 2], -5: None, 2 ** 40: True}, 'big': 2 ** 70, 'neg_big': -2 ** 65,
        'floats': [1.5, float('inf'), float('-inf'), float('nan'), -0.0, 1e-300, 2.0],
        'tuple': (1, 'two', 3.5, None, [4]), 'set': {3, 1, 2}, 'frozen': frozenset({'a', 'b'}),
        'bytes': b'\x00\xffabc\x80', 'empty_bytes': b'', 'unicode': 'Grüße ✓ 你好 🙂',
        'device': torch.device('cpu'), 'size': torch.Size([2, 3]),
        'np_f64': np.float64(0.75), 'np_i64': np.int64(-5), 'np_bool': np.bool_(True), 'np_f32': np.float32(0.5),
        'np_arr': np.arange(6, dtype=np.float32).reshape(2, 3), 'np_fortran': np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        'many': list(range(2500)),
    }
    dp = {'state_dict': collections.OrderedDict([('module.conv.weight', torch.ones(2, 1, 3)), ('module.conv.bias', torch.zeros(2))]),
          'epoch': 3}
    return {
        'views': (views, {}), 'dtypes': (dtypes, {}), 'nested_p2': (nested, {}),
        'nested_p4': (nested, {'pickle_protocol': 4}), 'nested_p5': (nested, {'pickle_protocol': 5}),
        'dp': (dp, {}),
    }


def make_cases(out):
    os.makedirs(out, exist_ok=True)
    for name, (obj, kw) in cases().items():
        torch.save(obj, os.path.join(out, f'{name}.pt'), **kw)
        with open(os.path.join(out, f'{name}.json'), 'w') as f:
            json.dump(canon(obj), f)
    # The same views, saved by an older-style call with an explicit archive name via a file object.
    with open(os.path.join(out, 'fileobj.pt'), 'wb') as f:
        torch.save({'x': torch.arange(4)}, f)
    torch.save({'x': torch.arange(4)}, os.path.join(out, 'legacy.pt'), _use_new_zipfile_serialization=False)
    # Plain pickles of every protocol, for the pickle VM alone.
    plain = {'a': [1, -1, 255, 256, 65535, 65536, -2 ** 31, 2 ** 31, 2 ** 63, -2 ** 100], 'f': [0.1, -1e308, 5e-324],
             's': ['', 'x' * 300, 'é'], 'b': [b'', b'\x01' * 300], 'nested': {'t': (), 't1': (1,), 't4': (1, 2, 3, 4)},
             'od': collections.OrderedDict([(1, 'one'), ('two', 2)]), 'bools': [True, False, None],
             'set': {5, 6}, 'shared': None}
    shared = [1, 2]
    plain['shared'] = [shared, shared]
    for p in range(0, 6):
        with open(os.path.join(out, f'plain_p{p}.pkl'), 'wb') as f:
            pickle.dump(plain, f, protocol=p)
    with open(os.path.join(out, 'plain.json'), 'w') as f:
        json.dump(canon(plain), f)
    # zip64 + deflate archive written by Python's zipfile (not PyTorch) for the zip reader.
    with zipfile.ZipFile(os.path.join(out, 'z64.zip'), 'w') as z:
        with z.open('stored.bin', 'w', force_zip64=True) as f:
            f.write(bytes(range(256)) * 40)
        z.writestr(zipfile.ZipInfo('deflated.txt'), ('hello zip ' * 500).encode(), compress_type=zipfile.ZIP_DEFLATED)
    # A zip that is not a torch archive, and a TorchScript archive.
    with zipfile.ZipFile(os.path.join(out, 'foreign.zip'), 'w') as z:
        z.writestr('readme.txt', 'not a checkpoint')
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, 'scripted.pt'))
    # A checkpoint holding a pickled class instance (must be refused, naming the global).
    torch.save({'opt': torch.optim.SGD}, os.path.join(out, 'with_class.pt'))
    return True


def summarize(path, weights_only):
    obj = torch.load(path, weights_only=True) if weights_only else torch.load(path)
    sums = {}
    value = canon(obj, sums)
    return {'value': value, 'sums': sums}


def read_safetensors(path):
    """Independent strict parse following the format description."""
    st = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32,
          'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'BOOL': np.bool_}
    names = {'F32': 'float32', 'F64': 'float64', 'F16': 'float16', 'BF16': 'bfloat16', 'I64': 'int64', 'I32': 'int32',
             'I16': 'int16', 'I8': 'int8', 'U8': 'uint8', 'BOOL': 'bool'}
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    assert (8 + n) % 8 == 0, 'header not padded to 8 bytes'
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop('__metadata__', None)
    spans = sorted((v['data_offsets'][0], v['data_offsets'][1], k) for k, v in header.items())
    pos = 0
    for b, e, k in spans:
        assert b == pos, f'hole or overlap before {k}'
        pos = e
    assert pos == len(data), 'data section has trailing bytes'
    out = []
    for k, v in header.items():
        b, e = v['data_offsets']
        chunk = data[b:e]
        if v['dtype'] in st:
            arr = np.frombuffer(chunk, dtype=st[v['dtype']]).reshape(v['shape'])
            assert arr.nbytes == len(chunk)
        out.append([k, {'tensor': {'dtype': names[v['dtype']], 'shape': v['shape'],
                                   'sha256': hashlib.sha256(chunk).hexdigest()}}])
    return {'keys': list(header.keys()), 'tensors': out, 'metadata': meta}


def big_state_dict(path, mb):
    torch.manual_seed(0)
    sd = collections.OrderedDict()
    total, i = 0, 0
    while total < mb * 1e6:
        t = torch.randn(256, 128, 3, 3) if i % 3 else torch.randn(64)
        sd[f'layer{i}.weight'] = t
        total += t.numel() * 4
        i += 1
    torch.save({'model_state_dict': sd, 'iteration': 1}, path)
    print(json.dumps({'tensors': len(sd), 'bytes': total}))


def guarded(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # reported to the TS test, which decides whether it was expected
        return {'error': f'{type(e).__name__}: {e}'}


def run_job(job):
    out = {}
    if 'make_cases' in job:
        out['make_cases'] = make_cases(job['make_cases'])
    for key, fn in (('summarize', lambda p: summarize(p, False)), ('weights_only', lambda p: summarize(p, True)),
                    ('read_safetensors', read_safetensors)):
        if key in job:
            out[key] = {p: guarded(fn, p) for p in job[key]}
    return out


if __name__ == '__main__':
    if sys.argv[1] == 'big-state-dict':
        big_state_dict(sys.argv[2], float(sys.argv[3]))
    else:
        print(json.dumps(run_job(json.loads(sys.argv[1]))))
