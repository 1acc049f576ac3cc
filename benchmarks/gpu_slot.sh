#!/usr/bin/env bash
# The full profile calibrated in one GPU slot (the device tool's H200: Python 3.12, JAX and CUDA, no TensorFlow,
# no bubblewrap, no network), rehearsed here first.
#
#   benchmarks/gpu_slot.sh --prepare     here: .slot/ = the wheels the device lacks (Python 3.12 builds),
#                                        deepgrade's own wheel, the four Fashion-MNIST files and the models
#                                        (the references and baselines, built in the student's jail); checks
#                                        that it all travels in 64 MiB. --wheels: only the download (make
#                                        slot-wheels, which make test runs; the rehearsal does the rest).
#   benchmarks/gpu_slot.sh [--budget S] [--seeds N] [--first-seed F] [--batch K]
#                                        there (the device tool: carry [".slot"]): installs the wheels, places
#                                        the data, calibrates the full profile of every exercise (references,
#                                        then baselines, K seeds at once), runs benchmarks/gpu.py, and leaves in
#                                        $OUT: slot.log, gpu.txt and slot.tar.gz (docs/calibration.md and the
#                                        full profile's records). No training starts after S seconds (default
#                                        420); a later slot goes on with --first-seed.
#   benchmarks/gpu_slot.sh --rehearse    here, in about a minute: the same run in a copy of what travels (the
#                                        tracked files and .slot/), with the course's full budgets cut to a
#                                        few hundred images, on this machine's JAX with TensorFlow made
#                                        unimportable and every carried package taken from the wheels only.
#
# Back here: tar -xzf slot.tar.gz, then `deepgrade calibrate EX --render --profile full` and course.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
SLOT=.slot
TWINS=.slot-rehearsal  # not carried: the binary wheels again, for this machine's Python (the rehearsal's)
OUT=${OUT:-$PWD/build/slot-out}
MODE=run
BUDGET=420
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) MODE=wheels ;;
        --prepare) MODE=prepare ;;
        --rehearse) MODE=rehearse ;;
        --budget) BUDGET=${2:?"--budget needs seconds"}; BUDGET=${BUDGET%.*}; shift ;;
        --seeds|--first-seed|--batch) ARGS+=("$1" "${2:?"$1 needs a number"}"); shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "gpu_slot.sh: unknown argument '$1': expected --wheels, --prepare, --rehearse, --budget S, --seeds N," \
                "--first-seed F or --batch K" >&2; exit 2 ;;
    esac
    shift
done

# What the device lacks (its package list: /work/.library/device/KINDS.md) and the grader needs, pinned to this
# project's versions (typing-extensions too: the device's may be older than pydantic-core needs). jax, numpy,
# ml-dtypes, h5py, absl-py, rich, pyyaml, typer and pytest are there.
CARRIED="keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0"
LIMIT=$((64 * 1024 * 1024))
DATA_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

travelling_bytes() {  # what the device tool sends: the tracked files (and untracked, not ignored) plus .slot/
    { git ls-files -z --cached --others --exclude-standard | xargs -0 cat 2>/dev/null; find "$SLOT" -type f -print0 | xargs -0 cat; } | wc -c
}

has_wheels() {  # has_wheels DIR: DIR holds the wheels of $CARRIED, as its stamp says
    [ -f "$1/.complete" ] && [ "$(cat "$1/.complete")" = "$CARRIED" ]
}

download() {  # download DIR [pip download options]: the wheels of $CARRIED into DIR, unless it has them
    local dir=$1
    shift
    has_wheels "$dir" && return 0
    rm -rf "$dir" && mkdir -p "$dir"
    # shellcheck disable=SC2086
    .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: "$@" -d "$dir" $CARRIED
    echo "$CARRIED" > "$dir/.complete"
}

wheels() {  # the only step that downloads (from the package registry): make slot-wheels runs it
    download "$SLOT/wheels" --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
    download "$TWINS"  # the same versions built for this Python: the rehearsal's
}

pack() {  # everything else that travels, made here from this checkout (no network)
    local py=.venv/bin/python
    for dir in "$SLOT/wheels" "$TWINS"; do
        if ! has_wheels "$dir"; then
            echo "gpu_slot: expected the carried wheels ($CARRIED) in $dir. Received: none or others." \
                 "Run make slot-wheels (or benchmarks/gpu_slot.sh --wheels) first: it downloads them." >&2
            exit 1
        fi
    done
    mkdir -p "$SLOT/data"
    rm -f "$SLOT"/wheels/deepgrade-*.whl
    $py -m pip wheel --quiet --no-deps --no-build-isolation -w "$SLOT/wheels" . >/dev/null
    local cache="${KERAS_HOME:-$HOME/.keras}/datasets/fashion-mnist"
    for f in $DATA_FILES; do cp -u "$cache/$f" "$SLOT/data/$f"; done
    $py benchmarks/gpu_slot.py build --models "$SLOT/models"
    local size
    size=$(travelling_bytes)
    echo "gpu_slot: what travels is $((size / 1024 / 1024)) MiB of the device tool's 64 MiB"
    if [ "$size" -gt "$LIMIT" ]; then
        echo "gpu_slot: expected what travels to fit in 64 MiB. Received: $size bytes. Carry less (.slot/)." >&2
        exit 1
    fi
}

install() {  # install PYTHON SITE WHEELS...: as the device installs them (deepgrade says Python 3.11; the device has 3.12)
    local py=$1 site=$2
    shift 2
    rm -rf "$site"
    "$py" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --ignore-requires-python \
        --target "$site" "$@"
}

run() {  # $PYTHON: the interpreter (the device's python3)
    local py=${PYTHON:-python3} site=${SITE:-/tmp/slot-site}
    mkdir -p "$OUT"
    exec > >(tee "$OUT/slot.log") 2>&1
    local tee_pid=$!
    echo "gpu_slot: $(date -u +%FT%TZ), $($py --version 2>&1), budget ${BUDGET} s, ${ARGS[*]:-}"
    local start=$SECONDS
    install "$py" "$site" "$SLOT"/wheels/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax DEEPGRADE_BWRAP=off
    export KERAS_HOME=${KERAS_HOME:-/tmp/slot-keras}
    # one compile per architecture and batch shape for the whole slot (the course's own models only: trusted)
    export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/slot-jax-cache} JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
    mkdir -p "$KERAS_HOME/datasets/fashion-mnist"
    for f in $DATA_FILES; do cp "$SLOT/data/$f" "$KERAS_HOME/datasets/fashion-mnist/$f"; done
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    local bench=${BENCH_SECONDS:-120}
    local left=$((BUDGET - (SECONDS - start) - bench))
    local status=0
    # gpu_slot.py packs $OUT/slot.tar.gz after each model it calibrates: a slot cut short keeps what ended
    OUT="$OUT" $py benchmarks/gpu_slot.py calibrate --models "$SLOT/models" --budget "$left" "${ARGS[@]}" || status=$?
    timeout "$bench" $py benchmarks/gpu.py ${BENCH_ARGS:-} > "$OUT/gpu.txt" 2>&1 \
        || echo "gpu_slot: benchmarks/gpu.py failed or ran out of its ${bench} s (gpu.txt says how far it got)"
    tail -n 20 "$OUT/gpu.txt"
    echo "gpu_slot: done in $((SECONDS - start)) s; in \$OUT: slot.log gpu.txt slot.tar.gz"
    exec 1>&- 2>&-
    wait "$tee_pid" || true
    return $status
}

rehearse() {
    pack
    local copy
    copy=$(mktemp -d "${REHEARSAL_DIR:-/tmp}/gpu-slot-rehearsal.XXXXXX")
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
    cp -r "$SLOT" "$copy/$SLOT"
    # Python 3.12's binary wheels cannot install on this Python: their twins (same names and versions) can
    local name
    for wheel in "$SLOT"/wheels/*-cp3*.whl; do
        name=$(basename "$wheel" | cut -d- -f1-2)
        ls "$TWINS/$name"-*.whl >/dev/null 2>&1 \
            || { echo "gpu_slot: expected a twin of $(basename "$wheel") in $TWINS. Run --prepare." >&2; exit 1; }
        rm "$copy/$wheel" && cp "$TWINS/$name"-*.whl "$copy/$SLOT/wheels/"
    done
    # the course's full budgets cut to what a rehearsal can train on a 2-core CPU in seconds
    .venv/bin/python - "$copy/course.yml" <<'EOF'
import sys, yaml
path = sys.argv[1]
course = yaml.safe_load(open(path))
for exercise in course["exercises"].values():
    full = exercise["profiles"]["full"]
    full["epochs"] = 1
    if "train_size" in full or not exercise.get("transfer"):
        full["train_size"] = 512
open(path, "w").write(yaml.safe_dump(course, sort_keys=False))
EOF
    # the device has no TensorFlow; every carried package must come from the wheels, not from this venv
    mkdir -p "$copy/.rehearsal"
    cat > "$copy/.rehearsal/sitecustomize.py" <<'EOF'
import importlib.machinery, os, sys
ABSENT = {"tensorflow", "tensorflow_hub", "tf_keras", "nbformat", "nbclient", "nbgrader", "ipykernel", "IPython"}
CARRIED = {"keras", "namex", "optree", "pydantic", "pydantic_core", "annotated_types", "typing_inspection",
           "typing_extensions", "deepgrade"}
SITE = os.environ["SITE"]
class Device:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in ABSENT:
            raise ImportError(f"{top} is not installed on the GPU machine (rehearsal)")
        if top in CARRIED and name == top:
            spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
            if spec is None:
                raise ImportError(f"{top} is not among the carried wheels (rehearsal)")
            return spec
        return None
sys.meta_path.insert(0, Device())
EOF
    echo "gpu_slot: rehearsing in $copy"
    local py3=""
    for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
        if "$candidate" --version >/dev/null 2>&1; then py3=$candidate; break; fi
    done
    if [ -n "$py3" ]; then
        if ! "$py3" -m compileall -q "$copy/src/deepgrade" "$copy/benchmarks" >/dev/null; then
            echo "gpu_slot: deepgrade or the benchmarks do not compile under $($py3 --version)" >&2
            exit 1
        fi
        echo "gpu_slot: deepgrade and the benchmarks compile under $($py3 --version)"
        install "$py3" "$copy/.site-3.12" "$SLOT"/wheels/*.whl  # the very wheels that travel, as the device installs them
        echo "gpu_slot: the carried wheels install under $($py3 --version)"
    else
        echo "gpu_slot: no Python 3.12 here: the sources were not compiled under 3.12"
    fi
    ln -s "$PWD/.venv" "$copy/.venv"
    (
        cd "$copy"
        export SITE="$copy/.site" PYTHON="$copy/.venv/bin/python" OUT="$copy/out"
        export PYTHONPATH="$copy/.rehearsal" KERAS_HOME="$copy/.keras" BENCH_SECONDS=15
        export BENCH_ARGS="--methods fastfit --train-size 512 --epochs 1"
        bash benchmarks/gpu_slot.sh --budget "${BUDGET_REHEARSAL:-150}" --seeds 1 --batch 1
    )
    echo "gpu_slot: rehearsal's output in $copy/out"
}

case "$MODE" in
    wheels) wheels ;;
    prepare) wheels; pack ;;
    rehearse) rehearse ;;
    run) run ;;
esac
