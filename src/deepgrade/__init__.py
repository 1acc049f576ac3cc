"""deepgrade: auto-graded exercises and quizzes for a hands-on TensorFlow/Keras course."""

import sys as _sys

__version__ = "0.1.0"


def _jsonschema_without_iri_grammar() -> None:
    """nbformat validates notebooks with jsonschema, whose format checker imports ``rfc3987_syntax`` (installed
    for Jupyter's event schemas), which builds a grammar at import: 0.85 s in every process that reads a notebook
    (``deepgrade check``, each student jail, each grader). Notebooks use no IRI formats: jsonschema is imported
    here without that checker, and ``rfc3987_syntax`` stays importable for anyone who imports it later."""
    if "jsonschema" in _sys.modules or "rfc3987_syntax" in _sys.modules:
        return
    _sys.modules["rfc3987_syntax"] = None  # an import of it now raises ImportError, which jsonschema expects
    try:
        import jsonschema._format  # noqa: F401
    except ImportError:
        pass
    finally:
        if _sys.modules.get("rfc3987_syntax", False) is None:
            del _sys.modules["rfc3987_syntax"]


_jsonschema_without_iri_grammar()
