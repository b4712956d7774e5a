"""MONAI's VISTA3D on the weights, window and prompts bench/vista3d-monai.ts gives it: times and outputs.

Run by bench/vista3d-monai.ts (never by tests): python3 vista3d_monai_ref.py ARGS.json
ARGS: monai (source folder holding the `monai` package), weights (.pt state dict), input (raw float32
[1,1,R,R,R]), roi, initFilters, featureSize, blocksDown, classes (class prompts of the automatic
call), point ([i,j,k] of one positive click, prompt class 1), reps, threads, device, out (folder).
Writes out/auto.bin and out/point.bin (float32 logits) and prints one JSON line of timings.
"""
import json
import resource
import sys
import time

a = json.load(open(sys.argv[1]))
sys.path.insert(0, a["monai"])
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.networks.nets.segresnet_ds import SegResNetDS2  # noqa: E402
from monai.networks.nets.vista3d import VISTA3D, ClassMappingClassify, PointMappingSAM  # noqa: E402

torch.set_num_threads(a["threads"])
dev = torch.device(a["device"])
F, E = a["initFilters"], a["featureSize"]
net = VISTA3D(
    image_encoder=SegResNetDS2(in_channels=1, blocks_down=tuple(a["blocksDown"]), norm="instance", out_channels=E, init_filters=F, dsdepth=1),
    class_head=ClassMappingClassify(n_classes=512, feature_size=E, use_mlp=True),
    point_head=PointMappingSAM(feature_size=E, n_classes=512, last_supported=132),
)
sd = torch.load(a["weights"], map_location="cpu")
missing, unexpected = net.load_state_dict(sd, strict=True)
net = net.to(dev).eval()
R = a["roi"]
x = torch.from_numpy(np.fromfile(a["input"], dtype=np.float32).reshape(1, 1, R, R, R)).to(dev)
cv = torch.tensor([[c] for c in a["classes"]], dtype=torch.long, device=dev)
pc = torch.tensor([[a["point"]]], dtype=torch.long, device=dev)
pl = torch.tensor([[1]], dtype=torch.long, device=dev)
pcls = torch.tensor([[1]], dtype=torch.long, device=dev)


def run(kind):
    with torch.no_grad():
        if kind == "auto":
            y = net(x, class_vector=cv)
        else:
            y = net(x, point_coords=pc, point_labels=pl, prompt_class=pcls)
        return y.float().cpu()  # the copy back synchronises a GPU


res = {"torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads()}
for kind in ("auto", "point"):
    y = run(kind)  # warm-up (oneDNN / cuDNN plan selection)
    y.numpy().astype(np.float32).tofile(f"{a['out']}/{kind}.bin")
    times = []
    for _ in range(a["reps"]):
        t = time.perf_counter()
        run(kind)
        times.append((time.perf_counter() - t) * 1000)
    res[kind + "Ms"] = sorted(times)[len(times) // 2]
res["peakRssMB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
if dev.type == "cuda":
    res["peakGpuMB"] = round(torch.cuda.max_memory_allocated() / 2**20)
print(json.dumps(res))
