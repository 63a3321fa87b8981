"""Rows and expected predictions for tests/onnx_check.js, and the ONNX checker.

    onnx_rows.py DATA.h5 PREDICTIONS.h5 OUT_DIR     raw arrays + rows.json
    onnx_rows.py --check MODEL.onnx                 onnx.checker.check_model
                                                    (exit 77 without onnx)
"""
import json
import os
import sys


def rows(data, preds, out):
    import h5py
    import numpy as np

    with h5py.File(data, "r") as f, h5py.File(preds, "r") as p:
        sparse = f["sparse"][...] if "sparse" in f else np.zeros((0, 0), np.int32)
        dense = f["dense"][...] if "dense" in f else np.zeros((0, 0), np.float32)
        pred = p["predictions"][...].astype("<f4")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in p["predictions"].attrs["names"]]
    n = pred.shape[0]
    os.makedirs(out, exist_ok=True)
    sparse.astype("<i8").tofile(os.path.join(out, "sparse.bin"))
    dense.astype("<f4").tofile(os.path.join(out, "dense.bin"))
    pred.tofile(os.path.join(out, "expected.bin"))
    S = sparse.shape[1] if sparse.ndim == 2 else 0
    D = dense.shape[1] if dense.ndim == 2 else 0
    with open(os.path.join(out, "rows.json"), "w") as f:
        json.dump({"n": int(n), "S": int(S), "D": int(D), "names": names}, f)


def check(model):
    try:
        import onnx
    except ImportError:
        print("SKIP: python3 has no onnx module (Debian: python3-onnx)")
        return 77
    m = onnx.load(model)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"onnx.checker: ok (opset {m.opset_import[0].version}, ops {','.join(ops)}, "
          f"metadata {','.join(sorted(meta))})")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    rows(*sys.argv[1:4])
