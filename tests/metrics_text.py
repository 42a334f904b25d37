"""Helpers for the metrics tests: read a /metrics answer, and the tables of docs/metrics.md.

Import with a relative import (``from ..metrics_text import scraped``), like ``helpers``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(?P<name>cofre_\w+)` \| (?P<type>\w+) \|(?P<labels>[^|]*)\|")
# Labels the exposition adds itself: a histogram's bucket bound.
_OWN_LABELS = {"le"}


@dataclass(frozen=True)
class Documented:
    name: str
    type: str
    labels: frozenset[str]


def documented(section: str | None = None) -> dict[str, Documented]:
    """The metrics docs/metrics.md lists (those of one ``## section`` if given), by name."""
    out: dict[str, Documented] = {}
    current = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            continue
        found = _ROW.match(line)
        if found and (section is None or current == section):
            labels = frozenset(re.findall(r"`(\w+)`", found["labels"]))
            out[found["name"]] = Documented(found["name"], found["type"], labels)
    return out


def exposed_name(family: Metric) -> str:
    """The name a family is documented under: a counter's with ``_total``."""
    return family.name + "_total" if family.type == "counter" else family.name


class Scraped:
    """One /metrics answer, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {exposed_name(f): f for f in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` (a counter's ``_total``, a histogram's ``_count``...) with
        exactly ``labels``; 0 if the series is not there (yet)."""
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample named ``name``, by its sorted labels."""
        return {
            tuple(sorted(s.labels.items())): float(s.value)
            for f in self.families.values()
            for s in f.samples
            if s.name == name
        }

    def label_names(self) -> dict[str, set[frozenset[str]]]:
        """Per family, the label sets its samples carry (a histogram's ``le`` left out)."""
        out: dict[str, set[frozenset[str]]] = {}
        for name, family in self.families.items():
            for s in family.samples:
                out.setdefault(name, set()).add(frozenset(s.labels) - _OWN_LABELS)
        return out


def check_against_doc(scraped: Scraped, section: str) -> None:
    """Every family the answer carries is documented in ``section`` with its type, and every
    sample carries exactly the documented labels."""
    doc = documented(section)
    assert set(scraped.families) == set(doc), set(scraped.families) ^ set(doc)
    for name, family in scraped.families.items():
        assert family.type == doc[name].type, (name, family.type)
    for name, label_sets in scraped.label_names().items():
        assert label_sets == {doc[name].labels}, (name, label_sets)
