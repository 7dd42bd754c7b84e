#!/usr/bin/env python3
"""Deep classifier inference: SpineMets per case vs a bare MONAI ResNet50 forward pass.

Both run in this process on the same phantom case with the same ResNet50
(random weights from a model package, 3 sequences, 7 classes). Measured, best
of repeats, CPU seconds of the process (shared machines disturb them less than
wall time):

* ``bare``: ``net(x)`` under ``torch.inference_mode`` on the prepared tensor,
  MONAI's network and nothing else;
* ``ours_forward``: :func:`SpineMetsClassifierLib.deep.inference.case_outputs` on
  the same tensor (forward with the embedding hook, softmax, per-patient mean);
  goal <= 1.10 x bare;
* ``ours_case``: the whole per-case path from SimpleITK images: lesion-centred
  input building (Core resampling and normalisation) + ``case_outputs``;
  goal <= 1.5 x bare.

For 2-D (three 224 x 224 sagittal slices, study A's ResNet50 input size) and
3-D (a 64^3 lesion crop). With CUDA, the per-case GPU wall time of the whole
path is reported too; without it the GPU line says it was skipped.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"forward": 1.10, "case": 1.5}
REPEATS = 3
CASES = {"2d": {"dims": 2, "size": (224, 224), "n_slices": 3}, "3d": {"dims": 3, "size": (64, 64, 64)}}

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "SpineMetsClassifier")]


def _best(fn, repeats=REPEATS, sync=None):
    best_cpu = best_wall = float("inf")
    result = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        if sync is not None:
            sync()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return result, best_cpu, best_wall


def main() -> int:
    import torch
    from SpineMetsClassifierLib.deep import InputSpec, build_case_input, load_deep_package, save_deep_package
    from SpineMetsClassifierLib.deep.inference import case_outputs
    from SpineMetsClassifierLib.deep.network import build_network, network_spec

    from SpineMetsPhantom import generate_case

    torch.set_num_threads(2)
    case = generate_case(seed=424242, case_id="bench")
    images = {s: case.images[s] for s in ("T1", "T2", "STIR")}
    classes = ["breast", "kidney", "liver", "lung", "other", "prostate", "thyroid"]
    report: dict[str, object] = {"repeats": REPEATS, "goals": GOALS, "torch_threads": torch.get_num_threads()}
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in CASES.items():
            spec = InputSpec(sequences=("T1", "T2", "STIR"), **settings).check()
            net_spec = network_spec("resnet50", spec.dims, 3, len(classes))
            torch.manual_seed(0)
            card = {"name": f"bench resnet50 {name}", "task": {"label": "site", "classes": classes}, "classes": classes,
                    "inputs": spec.to_json(), "network": net_spec, "synthetic_training_data": True}
            pkg = load_deep_package(save_deep_package(Path(tmp) / name, card, build_network(net_spec).state_dict()))
            net = pkg.build_network("cpu")
            prepared = build_case_input(images, case.lesion_mask, pkg.inputs)
            x = torch.from_numpy(prepared.array)

            def bare(net=net, x=x):
                with torch.inference_mode():
                    return net(x)

            def ours_forward(net=net, prepared=prepared):
                return case_outputs(net, [prepared.array], "cpu")

            def ours_case(net=net, pkg=pkg, device="cpu"):
                built = build_case_input(images, case.lesion_mask, pkg.inputs)
                return case_outputs(net, [built.array], device)

            bare()  # warm-up (allocator, oneDNN primitives)
            _, t_bare, _ = _best(bare)
            _, t_forward, _ = _best(ours_forward)
            _, t_case, _ = _best(ours_case)
            entry = {
                "input": list(prepared.array.shape),
                "bare_monai_cpu_s": round(t_bare, 4),
                "ours_forward_cpu_s": round(t_forward, 4),
                "ours_case_cpu_s": round(t_case, 4),
                "ratio_forward": round(t_forward / t_bare, 3),
                "ratio_case": round(t_case / t_bare, 3),
            }
            if entry["ratio_forward"] > GOALS["forward"] or entry["ratio_case"] > GOALS["case"]:
                failed.append(name)
            if torch.cuda.is_available():
                gpu_net = pkg.build_network("cuda")
                ours_case(gpu_net, pkg, "cuda")  # warm-up
                _, _, wall = _best(lambda gpu_net=gpu_net, pkg=pkg: ours_case(gpu_net, pkg, "cuda"),
                                   sync=torch.cuda.synchronize)
                entry["gpu_case_wall_s"] = round(wall, 4)
                entry["gpu"] = torch.cuda.get_device_name(0)
            else:
                entry["gpu_case_wall_s"] = None
                entry["gpu"] = "skipped: torch sees no CUDA device"
            report[name] = entry
    report["goal_missed"] = failed
    print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
