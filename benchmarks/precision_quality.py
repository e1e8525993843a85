"""STS-B through the query path of an int8 (or bf16) index: documents by torch, queries by the fast path.

python -m benchmarks.precision_quality $DATA/stsbenchmark/sts-test.csv --precision int8

An index's document vectors come from the torch encoder of its precision; its queries from the
query encoder (ONNX Runtime when its export is kept, else the same torch encoder). STS-B scores
a pair by the cosine of its two sentences: here sentence 1 plays the document (torch) and
sentence 2 the query, then the other way round, and the two Spearmans are averaged. "before" is
torch on both sides, as queries ran before the ONNX path for this precision existed.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from simsearch.encode import onnx_encoder, onnx_export
from simsearch.encode.torch_encoder import Encoder
from simsearch.eval.metrics import spearman


def _pairs(path: str) -> tuple[list[str], list[str], list[float]]:
    first, second, gold = [], [], []
    for line in open(path, encoding="utf-8"):
        cells = line.rstrip("\n").split("\t")
        if len(cells) >= 7:
            gold.append(float(cells[4]))
            first.append(cells[5])
            second.append(cells[6])
    return first, second, gold


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file")
    parser.add_argument("--precision", default="int8")
    args = parser.parse_args()
    first, second, gold = _pairs(args.file)
    documents = Encoder(precision=args.precision)
    directory = onnx_export.prepare(documents)
    fast = onnx_encoder.load(
        documents.model_id, str(documents.model_path), documents.pooling, documents.max_length, args.precision
    )
    d1, d2 = documents.encode(first), documents.encode(second)
    report = {"precision": args.precision, "export": str(directory), "pairs": len(gold)}
    report["before (torch both sides)"] = round(100 * spearman(np.sum(d1 * d2, axis=1), gold), 2)
    if fast is not None:
        q1, q2 = fast.encode(first), fast.encode(second)
        one = spearman(np.sum(d1 * q2, axis=1), gold)
        two = spearman(np.sum(q1 * d2, axis=1), gold)
        report["after (torch documents, ONNX queries)"] = round(100 * (one + two) / 2, 2)
        report["ONNX both sides"] = round(100 * spearman(np.sum(q1 * q2, axis=1), gold), 2)
        report["query cosine to torch (mean / min)"] = [
            round(float(np.mean(np.sum(q1 * d1, axis=1))), 5),
            round(float(np.min(np.sum(q1 * d1, axis=1))), 5),
        ]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
