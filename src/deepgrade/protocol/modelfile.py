"""What a ``.keras`` file may hold to cross the boundary: built-in Keras objects, and no data in its config.

Read from the archive's config.json before Keras deserializes anything, so a
Lambda layer or a custom class is refused without being imported or executed.
A config must not carry data either: ``keras.initializers.Constant(<array>)``
survives saving, safe_mode loading and ``clone_model``, so weights trained
anywhere (the test set included) would survive the grader's re-initialisation.
Arrays (``__numpy__``, ``__tensor__``), an initializer holding a list, numeric
lists longer than :data:`MAX_NUMBERS`, long strings and an oversized
config.json are refused. Both sides use it: the grader on a student's file, the
pretrained loader on the course's base.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StudentCodeError

MAX_CONFIG_BYTES = 262_144    # a large CNN's config is ~30 KB; this is no place for data
MAX_NUMBERS = 64              # numbers in one list (shapes, strides, a few boundaries); never weights
MAX_TOTAL_NUMBERS = 2_048     # numbers in all the config's lists together
MAX_STRING = 1_024            # characters in one string (names, activations, dtypes)
ARRAY_CLASSES = ("__numpy__", "__tensor__", "__bytes__")


def keras_module(module: str) -> bool:
    """``keras`` and ``keras.*`` exactly: not ``keras_hub``, ``keras_nlp`` or ``kerasfoo``."""
    return module == "keras" or module.startswith("keras.")


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def inspect_archive(path: Path) -> dict:
    """config.json of a ``.keras`` archive, after :func:`refuse_unsafe`; StudentCodeError for a bad file."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("config.json").file_size
            if size > MAX_CONFIG_BYTES:
                raise StudentCodeError(
                    f"The saved model's config.json is {size:,} bytes; expected at most {MAX_CONFIG_BYTES:,}: a "
                    "model's description is small, and the grader refuses configs that carry data. Build the model "
                    "from keras.layers without arrays in their arguments.")
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StudentCodeError(f"The saved model is not a valid .keras file ({type(exc).__name__}: {exc}).") from None
    refuse_unsafe(config)
    return config


def _numbers(node: Any) -> int:
    if isinstance(node, bool):
        return 0
    if isinstance(node, (int, float)):
        return 1
    if isinstance(node, list):
        return sum(_numbers(value) for value in node)
    return 0


def refuse_data(config: dict) -> None:
    """Raise StudentCodeError when a Keras config carries data: arrays, initializers holding lists, long
    numeric lists, long strings."""
    where = _owner_names(config)
    total = 0

    def refuse(what: str, owner: str) -> None:
        raise StudentCodeError(
            f"{owner} carries data in its configuration ({what}); the grader refuses it, because weights "
            "passed this way would survive the grader's own training. Expected: built-in layers and "
            "initializers with plain settings (e.g. kernel_initializer=\"glorot_uniform\" or Constant(0.1)). "
            "Remove the array from the layer's arguments and let the grader train the weights.")

    def visit(node: Any, owner: str) -> None:
        nonlocal total
        if isinstance(node, dict):
            owner = where.get(id(node), owner)
            name = node.get("class_name")
            if name in ARRAY_CLASSES:
                refuse(f"an array ({name})", owner)
            if node.get("module") == "keras.initializers" and isinstance(node.get("config"), dict):
                value = node["config"].get("value")
                if isinstance(value, (list, dict)):
                    refuse(f"a {name} initializer holding an array", owner)
            for value in node.values():
                visit(value, owner)
        elif isinstance(node, list):
            count = _numbers(node)
            if count > MAX_NUMBERS:
                refuse(f"a list of {count:,} numbers; at most {MAX_NUMBERS} expected", owner)
            total += sum(1 for value in node if isinstance(value, (int, float)) and not isinstance(value, bool))
            if total > MAX_TOTAL_NUMBERS:
                refuse(f"more than {MAX_TOTAL_NUMBERS:,} numbers in its lists", owner)
            for value in node:
                visit(value, owner)
        elif isinstance(node, str) and len(node) > MAX_STRING:
            refuse(f"a string of {len(node):,} characters; at most {MAX_STRING:,} expected", owner)

    visit(config, "The model")


def _owner_names(config: dict) -> dict[int, str]:
    """For each layer's dict (by id), how a message names it: 'Layer 3 (Dense "dense_1")'."""
    names: dict[int, str] = {}
    layers = config.get("config", {}).get("layers", []) if isinstance(config.get("config"), dict) else []
    layers = [layer for layer in (layers if isinstance(layers, list) else [])
              if isinstance(layer, dict) and layer.get("class_name") != "InputLayer"]  # numbered as model.layers
    for number, layer in enumerate(layers, start=1):
        if isinstance(layer, dict):
            name = layer.get("config", {}).get("name") if isinstance(layer.get("config"), dict) else None
            names[id(layer)] = f"Layer {number} ({layer.get('class_name')}{f' {str(name)[:40]!r}' if name else ''})"
    return names


def refuse_unsafe(config: dict) -> None:
    """Raise StudentCodeError for any object in a Keras config that is not a built-in Keras object, and for a
    config that carries data (:func:`refuse_data`)."""
    refuse_data(config)
    for node in _walk(config):
        name = node.get("class_name")
        if name is None or "module" not in node:
            continue
        if name in ("Lambda", "TFSMLayer"):
            raise StudentCodeError(
                f"The model contains a {name} layer; it runs arbitrary code, so the grader refuses it "
                "(safe_mode). Use built-in Keras layers instead (e.g. Rescaling, Reshape, Activation)."
            )
        module = node.get("module") or ""
        registered = node.get("registered_name")
        custom = registered is not None and registered != name  # built-in Keras objects carry none
        if custom or (module and not keras_module(module) and module != "builtins"):
            raise StudentCodeError(
                f"The model uses {name!r} from {(registered if custom else module)!r}, "
                "which is not a built-in Keras object; "
                "the grader only loads built-in Keras layers, losses and optimizers (safe_mode). "
                "Rewrite it with layers from keras.layers."
            )
