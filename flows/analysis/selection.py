"""Layer selection (``--layers``), shared by ``analyze``, ``scan``, ``distance`` and ``--describe``.

A selection is a comma-separated list of terms, as WeightWatcher's ``layers=[...]`` takes them:

* layer ids: ``3,5,8`` keeps those layers; ``-3,-5`` excludes them (ids and exclusions cannot be mixed, as in
  WeightWatcher; ``-0`` excludes layer 0, which WeightWatcher, counting from 1, never needs);
* layer types: ``dense``, ``conv1d``, ``conv2d``, ``embedding``, ``lm_head``, ``expert`` (any expert's matrix);
* name globs (``fnmatch``, matched against the tensor name with and without its ``.weight`` suffix):
  ``*attention*`` keeps, ``-*attention*`` excludes.

A layer is selected when it passes every kind of term given (ids AND types AND names), and any term of a kind
(OR within a kind). WeightWatcher applies the kinds one after the other, each overriding the last; we do not.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

LAYER_TYPES = ("dense", "conv1d", "conv2d", "embedding", "lm_head", "expert")
# Until the decoding step names experts, an expert's matrix is recognised by its name (experts.<k>.).
_EXPERT_NAME = re.compile(r"(^|\.)experts?\.\d+(\.|$)")


class SelectionError(ValueError):
    """A ``--layers`` value that cannot be parsed, or that selects no layer of the model."""


@dataclass(frozen=True)
class LayerInfo:
    """What selection looks at: a layer's id, name, type and expert index (None for non-expert layers)."""

    layer_id: int
    name: str
    layer_type: str
    expert: int | None = None

    @property
    def is_expert(self) -> bool:
        return self.expert is not None or bool(_EXPERT_NAME.search(self.name))


@dataclass(frozen=True)
class LayerSelection:
    text: str = ""
    ids: frozenset[int] = frozenset()
    excluded_ids: frozenset[int] = frozenset()
    types: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    excluded_names: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return not self.text

    @classmethod
    def parse(cls, text: str | None) -> LayerSelection:
        """Parse ``--layers``; raises :class:`SelectionError` naming the bad term."""
        terms = [t.strip() for t in (text or "").split(",") if t.strip()]
        ids, excluded_ids, types, names, excluded_names = set(), set(), set(), [], []
        for term in terms:
            if re.fullmatch(r"-?\d+", term):
                (excluded_ids if term.startswith("-") else ids).add(abs(int(term)))
            elif term in LAYER_TYPES:
                types.add(term)
            elif term.startswith("-") and len(term) > 1:
                excluded_names.append(term[1:])
            elif term.startswith("-"):
                raise SelectionError(f"--layers: empty exclusion {term!r}")
            else:
                names.append(term)
        if ids and excluded_ids:
            raise SelectionError(
                f"--layers {text!r}: give layer ids to keep or (negative) ids to exclude, not both, as in WeightWatcher"
            )
        return cls(
            ",".join(terms),
            frozenset(ids),
            frozenset(excluded_ids),
            frozenset(types),
            tuple(names),
            tuple(excluded_names),
        )

    def matches(self, layer: LayerInfo) -> bool:
        if self.ids and layer.layer_id not in self.ids:
            return False
        if layer.layer_id in self.excluded_ids:
            return False
        if self.types and not (layer.layer_type in self.types or ("expert" in self.types and layer.is_expert)):
            return False
        if self.names and not any(_name_matches(layer.name, g) for g in self.names):
            return False
        return not any(_name_matches(layer.name, g) for g in self.excluded_names)

    def select(self, layers: Iterable[LayerInfo]) -> list[LayerInfo]:
        """The selected layers; :class:`SelectionError` naming what exists when none is selected."""
        layers = list(layers)
        chosen = [layer for layer in layers if self.matches(layer)]
        if not chosen and not self.is_all:
            raise SelectionError(f"--layers {self.text!r} selects no layer; {available(layers)}")
        return chosen


def _name_matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.removesuffix(".weight"), pattern)


def available(layers: list[LayerInfo], shown: int = 4) -> str:
    """What a model holds, for an error message: the id range, the types, the first names."""
    if not layers:
        return "the model has no layers"
    ids = sorted(layer.layer_id for layer in layers)
    types = sorted({layer.layer_type for layer in layers} | ({"expert"} if any(x.is_expert for x in layers) else set()))
    names = ", ".join(layer.name for layer in layers[:shown]) + (", ..." if len(layers) > shown else "")
    return f"the model has {len(layers)} layers: ids {ids[0]}-{ids[-1]}, types {', '.join(types)}, names {names}"
