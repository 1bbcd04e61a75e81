"""Semantic search for `SQLStore`: LangGraph's ``index`` config, the texts of an item
that get embedded, and scoring where the database cannot.

Each embedded text of an item is one row of ``store_vectors`` (its field path, the
vector and the vector's norm); an item scores as its best-matching field, by cosine
similarity, as in LangGraph's stores. PostgreSQL scores in SQL over ``real[]``, SQLite
with sqlite-vec when this Python can load it; MySQL/MariaDB (no vector arithmetic) and
SQLite without sqlite-vec fetch the candidate vectors and score them with NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig, ensure_embeddings, get_text_at_path, tokenize_path

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.vectors import sqlite_vec_loadable
from checkpoint_sql.errors import ConfigurationError, InvalidArgumentError
from checkpoint_sql.stores.checks import preview

Scoring = Literal["auto", "database", "numpy"]


@dataclass(frozen=True)
class Index:
    """A checked ``index`` config."""

    dims: int
    embeddings: Embeddings
    fields: tuple[tuple[str, Any], ...]
    """The default fields: each path with its tokenized form (``"$"`` = the whole value)."""
    scoring: Literal["database", "numpy"]


def index_of(config: IndexConfig | None, family: Family, scoring: Scoring) -> Index | None:
    """Check `config` (``dims`` and ``embed`` required, ``fields`` optional) and decide
    where similarity is computed; refuse a choice the engine cannot honour."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"index must be a dict like {{'dims': 1536, 'embed': ...}}, not {preview(config)}")
    dims = config.get("dims")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ConfigurationError(f"index['dims'] must be a positive int (the embedding size), not {preview(dims)}")
    if config.get("embed") is None:
        raise ConfigurationError("index['embed'] is required: an Embeddings, a function of texts, or a provider string")
    fields = config.get("fields") or ["$"]
    if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
        raise ConfigurationError(
            f"index['fields'] must be a list of JSON paths such as ['text'], not {preview(fields)}"
        )
    return Index(
        dims=dims,
        embeddings=ensure_embeddings(config["embed"]),
        fields=tuple((f, f if f == "$" else tokenize_path(f)) for f in fields),
        scoring=_scoring(family, scoring),
    )


def _scoring(family: Family, scoring: Scoring) -> Literal["database", "numpy"]:
    in_database = family == "postgresql" or (family == "sqlite" and sqlite_vec_loadable())
    if scoring not in ("auto", "database", "numpy"):
        raise ConfigurationError(f"vector_scoring must be 'auto', 'database' or 'numpy', not {preview(scoring)}")
    if scoring == "database" and not in_database:
        raise ConfigurationError(
            f"vector_scoring='database' is not possible on {family}: "
            + (
                "MySQL/MariaDB have no vector arithmetic"
                if family == "mysql"
                else "this Python's sqlite3 cannot load extensions (or sqlite-vec is not installed)"
            )
        )
    chosen: Literal["database", "numpy"] = (
        "database" if scoring == "database" or (scoring == "auto" and in_database) else "numpy"
    )
    if chosen == "numpy":
        try:
            import numpy  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                f"semantic search on {family} scores vectors with NumPy, which is not installed: "
                "pip install 'checkpoint-sql[vector]'"
            ) from None
    return chosen


def texts(index: Index, value: Mapping[str, Any], fields: Sequence[str] | None) -> list[tuple[str, str]]:
    """The (field name, text) pairs of an item to embed: `fields` given to `put`, else
    the index's defaults. A path reaching several texts (``a[*].b``) yields one pair per
    text, named ``path.i``, as LangGraph's stores name them."""
    paths = index.fields if fields is None else tuple((f, f if f == "$" else tokenize_path(f)) for f in fields)
    found: list[tuple[str, str]] = []
    for name, tokens in paths:
        extracted = get_text_at_path(value, tokens)
        if len(extracted) == 1:
            found.append((name, extracted[0]))
        else:
            found.extend((f"{name}.{i}", text) for i, text in enumerate(extracted))
    return found


def check_vectors(vectors: Any, expected: int, dims: int) -> list[list[float]]:
    """What the embedding function returned: `expected` vectors of `dims` finite numbers."""
    if not isinstance(vectors, Sequence) or len(vectors) != expected:
        raise InvalidArgumentError(
            f"the index's embed function returned {preview(vectors)} for {expected} texts; expected {expected} vectors"
        )
    checked = []
    for vector in vectors:
        if len(vector) != dims or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in vector):
            raise InvalidArgumentError(
                f"the index's embed function returned a vector of {len(vector)} values; index['dims'] is {dims} "
                "and every value must be a finite number"
            )
        checked.append([float(x) for x in vector])
    return checked


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def numpy_scores(query: Sequence[float], vectors: Sequence[Sequence[float]], norms: Sequence[float]) -> list[float]:
    """Cosine similarity of `query` with each vector (0 for zero vectors)."""
    import numpy as np

    if not vectors:
        return []
    matrix = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    q_norm = float(np.linalg.norm(q))
    lengths = np.asarray(norms, dtype=np.float64) * q_norm
    dots = matrix @ q
    scores = np.divide(dots, lengths, out=np.zeros_like(dots), where=lengths != 0)
    return [float(s) for s in scores]
