"""Keras 2 habits, Keras 3 answers: a hint for the errors that code copied from TF 2.0-era slides raises.

The course's slides teach ``SGD(lr=0.01, decay=1e-6)``, ``Dense(256, input_shape=(784,))`` on flattened
rows, ``fit_generator``, ``history.history['acc']`` and ``hub.KerasLayer``; with TF 2.21 / Keras 3.15 each
fails with a message that says what went wrong ("Argument(s) not recognized: {'lr': 0.01}", "Exception
encountered when calling Sequential.call()") but not what Keras 3 wants instead. :func:`hint_for` reads a
failure (the exception's type and text, the libraries its traceback went through, the student's lines in it)
and returns that answer, worded "what happened. Keras 3 wants X: <code>. Received: ...", or None for any
other error. It matches the kind of problem, not one literal message.

Used wherever a student sees such an error: the sandbox's report of a failing cell or entry function
(``sandbox/child.py``), the grader's load and input checks (``grader/loading.py``, ``grader/plugin.py``), and
the student's own kernel (:func:`install_ipython_hints`, called when ``deepgrade.notebook_checks`` is
imported). No Keras import, nothing of deepgrade; matching is pure (only the IPython hook changes state).
"""

from __future__ import annotations

import linecache
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HERE = str(Path(__file__).resolve().parent)  # deepgrade's own frames are neither the student's nor a library's
_LIBRARY_DIRS = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class Failure:
    """What is known of one failure, for matching."""

    ename: str                  # the exception's type name ('' for a warning's text)
    text: str                   # its text, ANSI codes removed
    source: str = ""            # the student's code: what the caller gave, and the student's lines in the traceback
    libraries: tuple[str, ...] = ()  # the top-level packages the traceback went through, outermost first
    key: object = None          # a KeyError's key

    @property
    def deepest_library(self) -> str | None:
        return self.libraries[-1] if self.libraries else None


@dataclass(frozen=True)
class Hint:
    habit: str  # the habit's name, one of HABITS
    text: str

    def __str__(self) -> str:
        return self.text


def hint_for(exc: BaseException, source: str | None = None, *, only: Iterable[str] | None = None) -> str | None:
    """The Keras 3 answer to ``exc`` if it comes from a Keras 2 habit, else None.

    ``source``: the student's code, when known (a cell, a function); the student's lines in the traceback are
    read in any case. ``only``: the names of the habits to consider (default: all of :data:`HABITS`).
    """
    wanted = _wanted(only)
    try:
        found = find(failure_of(exc, source), wanted)
    except Exception:  # noqa: BLE001 - a hint is a courtesy: a strange exception never breaks the report of it
        return None
    return found.text if found else None


hint = hint_for  # the short name (notebook_checks calls ``hint(exc)``)


def hint_for_text(text: str, source: str = "", ename: str = "") -> str | None:
    """The same for a message without its exception (a warning's text, an error reported as text)."""
    found = find(Failure(ename=ename, text=_ANSI.sub("", text), source=source))
    return found.text if found else None


def find(failure: Failure, only: Iterable[str] | None = None) -> Hint | None:
    """The first habit that recognizes ``failure`` (None when none does)."""
    wanted = _wanted(only)
    for name, habit in HABITS.items():
        if name in wanted:
            text = habit(failure)
            if text:
                return Hint(name, text)
    return None


def _wanted(only: Iterable[str] | None) -> set[str]:
    wanted = set(HABITS) if only is None else set(only)
    unknown = wanted - set(HABITS)
    if unknown:
        raise ValueError(f"Unknown habit(s): {sorted(unknown)}. Expected some of: {', '.join(HABITS)}.")
    return wanted


def failure_of(exc: BaseException, source: str | None = None) -> Failure:
    """Read an exception: its text, the libraries and the student's lines of its traceback."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ is no reason to fail here
        text = ""
    try:
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    except Exception:  # noqa: BLE001
        frames = []
    libraries, lines = _read_frames(frames)
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    return Failure(ename=type(exc).__name__, text=_ANSI.sub("", text),
                   source="\n".join(filter(None, [source or "", *lines])), libraries=tuple(libraries), key=key)


def _read_frames(frames) -> tuple[list[str], list[str]]:
    """(the libraries the frames go through, outermost first; the student's lines in them)."""
    libraries: list[str] = []
    lines: list[str] = []
    for frame in frames:
        library = _library(frame.filename)
        if library:
            if not libraries or libraries[-1] != library:
                libraries.append(library)
        elif not frame.filename.startswith(_HERE) and not _is_stdlib(frame.filename):
            first = frame.lineno or 0
            last = min(getattr(frame, "end_lineno", None) or first, first + 20)
            lines.extend(linecache.getline(frame.filename, n).strip() for n in range(first, last + 1))
    return libraries, [line for line in lines if line]


def _library(filename: str) -> str | None:
    parts = Path(filename).parts
    for marker in _LIBRARY_DIRS:
        if marker in parts:
            index = parts.index(marker)
            if index + 1 < len(parts):
                return parts[index + 1].removesuffix(".py")
    return None


def _is_stdlib(filename: str) -> bool:
    return filename.startswith((sys.base_prefix, sys.prefix)) or filename.startswith("<frozen ")


# --- the habits ------------------------------------------------------------------------------------------

_SCHEDULE = ("a schedule from keras.optimizers.schedules as the learning rate, "
             "learning_rate=InverseTimeDecay({lr}, decay_steps=1, decay_rate={decay}) (the same lr / (1 + decay * step))")


def _number(pattern: str, text: str, default: str) -> str:
    found = re.search(pattern, text)
    return found.group(1) if found else default


def _decay_advice(source: str, text: str, lr: str) -> str:
    decay = _number(r"\bdecay\s*[=:]\s*([0-9.eE+-]+)", source, "") or _number(r"'decay':\s*([0-9.eE+-]+)", text, "")
    if not decay:
        return ""
    return (f" `decay=` is gone too (Keras 3 ignores it, with a warning): Keras 3 wants "
            f"{_SCHEDULE.format(lr=lr, decay=decay)}, or no `decay=`.")


def optimizer_lr(f: Failure) -> str | None:
    """``SGD(lr=0.01)``: "Argument(s) not recognized: {'lr': 0.01}"; ``optimizer.lr``: no attribute 'lr'."""
    if re.search(r"not recognized:.*['\"]lr['\"]\s*:", f.text, re.S) or \
            re.search(r"unexpected keyword argument '?lr'?", f.text):
        lr = _number(r"['\"]lr['\"]\s*:\s*([0-9.eE+-]+)", f.text, "") or \
            _number(r"\blr\s*=\s*([0-9.eE+-]+)", f.source, "0.01")
        optimizer = _number(r"(\w+)\([^()]*\blr\s*=", f.source, "SGD")
        args = [a.strip() for a in _number(rf"\b{optimizer}\(([^()]*)\)", f.source, "").split(",") if a.strip()]
        args = [re.sub(r"^lr\s*=\s*", "learning_rate=", a) for a in args if not re.match(r"decay\s*=", a)]
        if not any(a.startswith("learning_rate=") for a in args):
            args.insert(0, f"learning_rate={lr}")
        code = f"keras.optimizers.{optimizer}({', '.join(args)})"
        return (f"`lr` is the Keras 2 name of the learning rate. Keras 3 wants `learning_rate=`: {code}."
                f"{_decay_advice(f.source, f.text, lr)} Received: lr={lr}.")
    found = re.search(r"'(\w+)' object has no attribute '(lr|decay)'", f.text)
    if found:
        return (f"Keras 3 optimizers have no `{found.group(2)}` attribute. Keras 3 wants `learning_rate`: "
                "optimizer.learning_rate (a variable: optimizer.learning_rate.assign(0.001) changes it; "
                "model.optimizer.learning_rate for a compiled model). "
                f"Received: {found.group(1)}.{found.group(2)}.")
    return None


def optimizer_decay(f: Failure) -> str | None:
    """``decay=`` alone: Keras 3 warns "Argument `decay` is no longer supported" (tf_keras raises)."""
    if re.search(r"`?decay`? is (no longer supported|deprecated)", f.text):
        lr = _number(r"\b(?:learning_rate|lr)\s*=\s*([0-9.eE+-]+)", f.source, "0.01")
        decay = _number(r"\bdecay\s*=\s*([0-9.eE+-]+)", f.source, "")
        return ("`decay=` is a Keras 2 optimizer argument: Keras 3 ignores it, so the learning rate never decays. "
                f"Keras 3 wants {_SCHEDULE.format(lr=lr, decay=decay or '1e-06')}, or no `decay=`. "
                f"Received: decay={decay or '...'}.")
    return None


_FLAT = (
    re.compile(r"[Ee]xpected shape=?\s*\(None, (\d+)\),?\s*(?:but input has incompatible shape|found shape=)\s*"
               r"(\([^)]*\))"),
    re.compile(r"configured to use input shape \(None, (\d+)\)\. You cannot build it with input_shape "
               r"(\([^)]*\))"),
    re.compile(r"expected axis -1 of input shape to have value (\d+),? but received input with shape "
               r"(\([^)]*\))"),
)


def flat_input(f: Failure) -> str | None:
    """``Dense(256, input_shape=(784,))`` without Flatten, given 28x28x1 images."""
    for pattern in _FLAT:
        found = pattern.search(f.text)
        if not found:
            continue
        units, shape = found.group(1), found.group(2)
        if shape.count(",") < 2:  # the input given is itself flat (None, k): a size mismatch, not this habit
            return None
        return (f"The model was built for flat vectors of {units} values (`input_shape=({units},)`, the Keras 2 "
                "slides' flattened rows), but it is given images: the course's inputs are 28x28x1 images. "
                "Keras 3 wants the image shape as the input and a Flatten layer first: keras.Sequential("
                "[keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(256, activation='relu'), ...]). "
                f"Received: inputs of shape {shape} for a model that expects (None, {units}).")
    return None


_GENERATORS = {"fit_generator": "fit", "evaluate_generator": "evaluate", "predict_generator": "predict"}


def generator_methods(f: Failure) -> str | None:
    """``model.fit_generator(...)``: "'Sequential' object has no attribute 'fit_generator'"."""
    found = re.search(r"'(\w+)' object has no attribute '(fit_generator|evaluate_generator|predict_generator)'",
                      f.text)
    if not found:
        return None
    old, new = found.group(2), _GENERATORS[found.group(2)]
    return (f"`{old}` was removed in Keras 3. Keras 3 wants `model.{new}(generator, ...)`: fit, evaluate and "
            "predict take Python generators, keras.utils.PyDataset and tf.data datasets directly "
            f"(e.g. model.fit(train_generator, epochs=5, validation_data=val_generator)). Received: model.{old}(...).")


_REMOVED = {
    "predict_classes": "np.argmax(model.predict(x), axis=-1)",
    "predict_proba": "model.predict(x) (the softmax output is the probabilities)",
}


def removed_methods(f: Failure) -> str | None:
    """``model.predict_classes(x)`` and ``predict_proba``: removed since TF 2.6."""
    found = re.search(r"'(\w+)' object has no attribute '(predict_classes|predict_proba)'", f.text)
    if not found:
        return None
    old = found.group(2)
    return (f"`{old}` is gone (removed in TF 2.6; Keras 3 has none). Keras 3 wants: {_REMOVED[old]}. "
            f"Received: model.{old}(...).")


def layer_shape_attributes(f: Failure) -> str | None:
    """``layer.output_shape``: Keras 3 layers have no output_shape / input_shape attributes."""
    found = re.search(r"'(\w+)' object has no attribute '(output_shape|input_shape)'", f.text)
    if not found:
        return None
    which = found.group(2).split("_")[0]
    return (f"Keras 3 layers have no `{found.group(2)}` attribute. Keras 3 wants the layer's symbolic "
            f"{which}: layer.{which}.shape (on a model built with keras.Input), or model.summary() for every "
            f"layer. Received: {found.group(1)}.{found.group(2)}.")


_METRIC_KEYS = {"acc": "accuracy", "val_acc": "val_accuracy", "accuracy": "acc", "val_accuracy": "val_acc"}


def metric_key(f: Failure) -> str | None:
    """``history.history['acc']`` after ``compile(metrics=['accuracy'])`` (and the other way round)."""
    key = f.key if f.ename == "KeyError" else None
    if key is None and f.ename in ("KeyError", ""):
        found = re.fullmatch(r"\s*['\"]((?:val_)?acc(?:uracy)?)['\"]\s*", f.text)
        key = found.group(1) if found else None
    if key not in _METRIC_KEYS:
        return None
    other = _METRIC_KEYS[key]
    full = key if "accuracy" in key else other
    return (f"There is no {key!r} key: Keras 3 names the keys of history.history (and of a callback's logs) "
            "exactly as the metrics given to compile(): metrics=['accuracy'] gives 'accuracy' and "
            "'val_accuracy', metrics=['acc'] gives 'acc' and 'val_acc'. Keras 3 wants one name in both places: "
            f"compile(..., metrics=['accuracy']) and history.history[{full!r}] "
            f"(print(history.history.keys()) lists them). Received: key {key!r}.")


def hub_layer(f: Failure) -> str | None:
    """``hub.KerasLayer(...)`` in a Keras 3 model: a tf_keras layer (or a SavedModel it cannot call)."""
    if not (re.search(r"tensorflow_hub|\bKerasLayer\b", f.text) or "tensorflow_hub" in f.libraries
            or "Signature name has to be specified for non-callable saved models" in f.text):
        return None
    received = ("hub.KerasLayer(...) on a SavedModel without a callable default" if "non-callable" in f.text
                else "hub.KerasLayer(...) in a Keras 3 model")
    export = (", and it cannot call a SavedModel that Keras 3's model.export() wrote (it has no callable default)"
              if "non-callable" in f.text else "")
    return (f"hub.KerasLayer is a tf_keras (Keras 2) layer: a Keras 3 model cannot hold it{export}. "
            "Keras 3 wants the base the "
            "exercise passes to build_model(base): x = base(inputs), or keras.Sequential([base, "
            "layers.Dense(...)]); for another SavedModel, keras.layers.TFSMLayer(path, "
            f"call_endpoint='serving_default'). Received: {received}.")


def tf_keras_mix(f: Failure) -> str | None:
    """A tf_keras (Keras 2) layer, tensor or optimizer in a Keras 3 model, or the other way round."""
    mixed = re.search(r"<(?:class ')?(tf_keras\.[\w.]+)", f.text) or \
        (re.search(r"<(?:class ')?(keras\.src\.[\w.]+)", f.text) if "tf_keras" in f.libraries else None)
    if mixed:
        return ("Keras 3 and tf_keras (Keras 2) objects cannot be mixed in one model. Keras 3 wants everything "
                "from `import keras` (keras.layers, keras.optimizers, keras.Input): `tf.keras` is Keras 3 too in "
                "TF 2.21 unless TF_USE_LEGACY_KERAS=1 is set, `import tf_keras` never is. "
                f"Received: a {mixed.group(1)}.")
    if f.deepest_library == "tf_keras":
        return ("The error came from tf_keras (Keras 2), not Keras 3: this course builds Keras 3 models. "
                "Keras 3 wants everything from `import keras` (keras.layers, keras.optimizers, keras.Input): "
                "`tf.keras` is Keras 3 in TF 2.21 unless TF_USE_LEGACY_KERAS=1 is set, `import tf_keras` never is. "
                f"Received: {_first_line(f.text) or f.ename}")
    return None


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0][:limit] if text.strip() else ""
    return line if not line or line.endswith(".") else line + "."


HABITS: dict[str, Callable[[Failure], str | None]] = {
    "optimizer_lr": optimizer_lr,
    "optimizer_decay": optimizer_decay,
    "flat_input": flat_input,
    "generator_methods": generator_methods,
    "removed_methods": removed_methods,
    "layer_shape_attributes": layer_shape_attributes,
    "metric_key": metric_key,
    "hub_layer": hub_layer,
    "tf_keras_mix": tf_keras_mix,
}
# The habits a model file (not the notebook's other code) can carry to the grader.
MODEL_HABITS = ("flat_input", "hub_layer", "tf_keras_mix")


# --- the student's own kernel ------------------------------------------------------------------------------

_CAUGHT = (ValueError, TypeError, AttributeError, KeyError)


def install_ipython_hints() -> bool:
    """In an IPython kernel, show the Keras 3 answer under the traceback of a matching error, and under the
    warning Keras 3 gives for ``decay=``. Other errors show as before. Outside IPython (or where another
    custom exception handler is set) it does nothing; returns whether the hints are installed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    if shell.custom_exceptions and not getattr(shell, "_deepgrade_hints", False):
        return False  # someone else's handler: left as it is
    shell.set_custom_exc(_CAUGHT, _show_with_hint)
    shell._deepgrade_hints = True
    if not getattr(warnings.showwarning, "_deepgrade_hints", False):
        warnings.showwarning = _warning_with_hint(warnings.showwarning)
    return True


def _show_with_hint(shell, etype, value, tb, tb_offset=None):
    """IPython's custom exception handler: the usual traceback, then the hint (as the traceback's last line)."""
    hint = hint_for(value)
    if hint and not hasattr(value, "_render_traceback_"):
        try:  # IPython shows what an exception's _render_traceback_ gives instead of its own rendering
            stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
            value._render_traceback_ = lambda: [*stb, f"\n\x1b[1mKeras 3:\x1b[0m {hint}"]
        except Exception:  # noqa: BLE001 - the usual traceback, without the hint
            pass
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    return None


def _warning_with_hint(show):
    def showwarning(message, category, filename, lineno, file=None, line=None):
        show(message, category, filename, lineno, file, line)
        hint = None
        if issubclass(category, UserWarning) and "decay" in str(message):
            _, lines = _read_frames(traceback.extract_stack()[:-1])  # the student's call that warned
            hint = hint_for_text(str(message), source="\n".join(lines))
        if hint:
            print(f"Keras 3: {hint}", file=file if file is not None else sys.stderr)

    showwarning._deepgrade_hints = True
    return showwarning
