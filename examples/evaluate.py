"""Evaluate a SapiensID model on a benchmark under its published protocol.

    python examples/evaluate.py --model <folder or hub id> --dataset-root data/Market-1501-v15.09.15 \
        --benchmark market1501 --output-dir outputs/market1501
    accelerate launch --num_processes 2 examples/evaluate.py --model ... --dataset-root data/LTCC_ReID --benchmark ltcc
    python examples/evaluate.py --model ... --dataset-root data/faces/lfw.bin --benchmark verification

Benchmarks and their protocols: sapiensid_hf/evaluation/benchmark_specs.py (market1501, msmt17, ltcc,
prcc, ccvid, ccvid_video, verification), and public-dev, the development checks on ../shared/data/identities
(its table printed as `sapiensid evaluate` prints it; `--against OTHER_MODEL` to compare two models). Embeddings are computed in batches (flip test-time
augmentation on by default, as the official evaluation), cached in <output-dir>/embeddings, and
results land in <output-dir>/results.json, results.md and cmc.png / roc.png (figures with their 95 %
intervals); `--rerank` adds the
rankings after k-reciprocal re-ranking. The same runs as `sapiensid evaluate ...`.
"""

from accelerate import PartialState

from sapiensid_hf.evaluation.public_dev import dev_markdown
from sapiensid_hf.evaluation.report import figure_cell
from sapiensid_hf.evaluation.runner import PUBLIC_DEV, build_parser, run_evaluation_from_args


def main() -> None:
    results = run_evaluation_from_args(build_parser().parse_args())
    if not PartialState().is_main_process:
        return
    if results.get("benchmark") == PUBLIC_DEV:  # the development checks: their own table
        print(dev_markdown(results))
        print("tables and plots:", ", ".join(results["files"].values()))
        return
    for suffix, rankings in (("", results.get("rankings", {})), (", re-ranked", results.get("rankings_reranked", {}))):
        for name, row in rankings.items():
            if "error" in row:
                print(f"{name}{suffix}: {row['error']}")
            else:
                print(f"{name + suffix:>38}: rank-1 {figure_cell(row, 'rank1')}  mAP {figure_cell(row, 'mAP')}")
    if "verification" in results:
        print(f"accuracy {figure_cell(results['verification'], 'accuracy')}")
    if "intervals" in results:
        print("(in brackets: 95 % intervals over the query people / the pairs; docs/evaluation.md, \"Intervals\")")
    print("tables and plots:", ", ".join(results["files"].values()))


if __name__ == "__main__":
    main()
