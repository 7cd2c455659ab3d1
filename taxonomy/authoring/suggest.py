"""Suggest, for each label of a new dataset, the concept of the tree it most likely denotes.

Evidence for a concept, each with a strength in 0..1 (combined per concept as a noisy-or, so independent kinds of
evidence add up and repeats of one kind barely do):

- ``name`` / ``synonym``: the label's name (or one of its synonyms) is, up to case, separators, spacing and a plural,
  the name under which one of the tree's datasets labels the concept, or the concept's own name. ``group``: it is
  the base name of a grouping node (COCO-Stuff's ``ground-stuff`` for ``ground``), a weaker match. ``part``: a
  compound name (``tvmonitor``) whose parts name concepts.
- ``synset``: a WordNet noun sense of the name is the concept's synset, weighted by the sense's rank (WordNet orders
  senses by frequency) and, when the label has a description, by how much the description shares with the sense's
  gloss. Only senses under ``physical_entity`` count where there are any: a segmentation label is a thing or stuff.
  A ``synset`` column replaces the senses by the one given.
- ``hypernym``: the nearest concepts whose synsets lie on a sense's hypernym paths (the label is a kind of them);
  ``hyponym``: concepts whose synsets lie below a sense (the label is coarser than them). Both decay with the
  WordNet distance and never make a match on their own: they place a proposed new concept.
- ``description``: the share of the description's content words found in a concept's definition and names, each
  word weighted by how rare it is among the concepts' texts.

A label is matched to the best concept when that concept has direct evidence (a name, synonym, group, part or
synset) and a score of at least :data:`MATCH_SCORE`; otherwise a new concept is proposed (its synset the best sense,
its parent the deepest concept the hypernym or hyponym evidence points at) and flagged for review. Catch-all names
(``background``, ``void``, ``unlabeled``, ...) are suggested as void. A match is flagged for review when its score is
under :data:`SURE_SCORE`, the next concept is within :data:`CLOSE`, it rests on a synonym or a rarer sense only, or
the label's description shares nothing with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hierseg.core.errors import ProblemList
from hierseg.taxonomy.authoring.extend import TODO
from hierseg.taxonomy.authoring.labeltable import LabelTable, normalize
from hierseg.taxonomy.authoring.mergespec import concept_id
from hierseg.taxonomy.specs import Label, dataset_spec
from hierseg.taxonomy.tree import Taxonomy

MATCH_SCORE = 0.4
SURE_SCORE = 0.8
CLOSE = 0.05
CATCH_ALL = frozenset({"background", "unlabeled", "unlabelled", "void", "ignore", "other", "others", "unknown",
                       "misc", "miscellaneous", "clutter", "none", "dontcare", "don t care", "not labeled",
                       "other objects", "other stuff"})
IGNORE_NAMES = ("void", "ignore", "unlabeled", "unlabelled", "dontcare", "don t care", "not labeled")
DIRECT = ("name", "synonym", "group", "part", "synset", "given synset")
STRENGTH = {"name": 0.9, "synonym": 0.75, "group": 0.5, "part": 0.45, "synset": 0.8, "given synset": 0.95,
            "hypernym": 0.45, "hyponym": 0.3, "description": 0.35}
DECAY = 0.8  # per WordNet step of a hypernym or hyponym path
DESCRIPTION_SHARE = 0.25  # the least share of a description's word weight a concept must hold to count
HYPONYM_STEPS = 2  # a general word (thing, device) is above half the tree; only near hyponyms say where a label goes
_GROUP = re.compile(r"^(.*\S)[ _-]+(stuff|things)$")
_STOP = frozenset("a an the of or and for in on at to by with from as is are be it its this that which who used "
                  "usually often any other such some not no etc e g i".split())


@dataclass(frozen=True)
class Evidence:
    kind: str  # one of STRENGTH's keys
    detail: str  # what matched, for a reviewer
    strength: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "strength": round(self.strength, 3)}


@dataclass(frozen=True)
class Candidate:
    concept: str
    score: float
    evidence: tuple[Evidence, ...]

    @property
    def direct(self) -> bool:
        return any(e.kind in DIRECT for e in self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "score": round(self.score, 3), "evidence": [e.to_dict() for e in self.evidence]}


@dataclass(frozen=True)
class NewConcept:
    """A concept the tree lacks: where it would go and whether WordNet agrees with the placement."""

    id: str
    name: str
    parent: str
    synset: str | None
    placed: bool | None  # the parent's nearest synset is among the synset's hypernyms (None: nothing to check)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "parent": self.parent, "synset": self.synset,
                "exception": self.placed is False, "reason": self.reason}


@dataclass(frozen=True)
class Suggestion:
    id: int
    name: str
    status: str  # "match", "new" or "void"
    concept: str | None  # the matched concept (None for "new" and "void")
    score: float
    review: bool
    evidence: tuple[Evidence, ...]
    alternatives: tuple[Candidate, ...]  # the next two candidates
    new: NewConcept | None = None
    note: str = ""
    line: int | None = None

    @property
    def answer(self) -> str:
        """What the suggestion says in one token: a concept id, ``new:<parent>`` or ``void``."""
        if self.status == "new" and self.new is not None:
            return f"new:{self.new.parent}"
        return self.concept or "void"

    @property
    def ranked(self) -> tuple[str, ...]:
        """The answer followed by the alternatives' concepts: what top-k accuracy looks at."""
        return (self.answer, *(c.concept for c in self.alternatives))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "concept": self.concept, "score": round(self.score, 3),
                "status": self.status, "review": self.review, "evidence": [e.to_dict() for e in self.evidence],
                "alternatives": [c.to_dict() for c in self.alternatives],
                "new": self.new.to_dict() if self.new is not None else None, "note": self.note, "line": self.line}


def _words(text: str) -> list[str]:
    return [w for w in normalize(text).split() if w not in _STOP and len(w) > 1]


@dataclass
class _Entry:
    concept: str
    kind: str  # name, synonym or group
    source: str  # where the name comes from, for the evidence line


class Suggester:
    """The tree's concepts indexed by name and WordNet synset; build once, then :meth:`suggest` any number of tables."""

    def __init__(self, taxonomy: Taxonomy, wordnet: Any) -> None:
        from nltk.corpus.reader.wordnet import WordNetError

        self.taxonomy, self.wordnet = taxonomy, wordnet
        self._physical = wordnet.synset("physical_entity.n.01")
        self.names: dict[str, list[_Entry]] = {}
        self.synset_of: dict[str, Any] = {}
        self.by_synset: dict[Any, list[str]] = {}
        self.text: dict[str, set[str]] = {}
        for concept in taxonomy:
            words = set(_words(concept.name.replace("_", " ")))
            if concept.definition:
                words |= set(self._lemmas(_words(concept.definition)))
            self.text[concept.id] = words
            match = _GROUP.match(concept.name)
            if match:
                self._add(match.group(1), concept.id, "group", f"group {concept.name!r}")
            else:
                self._add(concept.name, concept.id, "name", f"concept {concept.id!r}")
            if concept.synset:
                try:
                    synset = wordnet.synset(concept.synset)
                except (WordNetError, ValueError):
                    continue
                self.synset_of[concept.id] = synset
                self.by_synset.setdefault(synset, []).append(concept.id)
                self.text[concept.id] |= {w for lemma in synset.lemma_names() for w in _words(lemma)}
        for dataset in taxonomy.datasets:
            spec = dataset_spec(dataset, taxonomy.artifact)
            for label_id, cid in taxonomy.dataset_concepts(dataset).items():
                label = spec.label(label_id)
                names = _label_names(label)
                self._add(names[0], cid, "name", f"{dataset} label {label_id} {label.name!r}")
                for other in names[1:]:
                    self._add(other, cid, "synonym", f"{dataset} label {label_id} {label.name!r}")
                self.text[cid] |= {w for n in names for w in _words(n)}
        # Word weights for descriptions: a word in many concepts' texts (small, large) says little.
        frequency: dict[str, int] = {}
        for words in self.text.values():
            for word in words:
                frequency[word] = frequency.get(word, 0) + 1
        self._idf_default = math.log(len(self.text) + 1)
        self.idf = {w: math.log((len(self.text) + 1) / (n + 1)) for w, n in frequency.items()}
        # Below each synset: the concepts whose synsets descend from it, with the distance (hyponym evidence).
        self.below: dict[Any, list[tuple[str, int]]] = {}
        for cid, synset in self.synset_of.items():
            for ancestor, distance in _up(synset).items():
                if distance:
                    self.below.setdefault(ancestor, []).append((cid, distance))

    def _add(self, name: str, concept: str, kind: str, source: str) -> None:
        key = normalize(name)
        if not key:
            return
        entries = self.names.setdefault(key, [])
        if not any(e.concept == concept and e.kind == kind for e in entries):
            entries.append(_Entry(concept, kind, source))
        compact = key.replace(" ", "")
        if compact != key:
            self.names.setdefault(f"#{compact}", []).append(_Entry(concept, kind, source))

    def _lemmas(self, words: Iterable[str]) -> list[str]:
        return [self.wordnet.morphy(w, "n") or w for w in words]

    # ---- one label

    def _lookup(self, term: str) -> list[_Entry]:
        key = normalize(term)
        found = list(self.names.get(key, ()))
        words = key.split()
        if words:
            base = self.wordnet.morphy(words[-1], "n")
            if base and base != words[-1]:
                found += self.names.get(" ".join([*words[:-1], base]), ())
        found += [e for e in self.names.get(f"#{key.replace(' ', '')}", ()) if e not in found]
        return found

    def _split(self, word: str) -> tuple[str, str] | None:
        """A closed compound of two WordNet words (``tvmonitor`` -> ``tv``, ``monitor``), head last."""
        wn = self.wordnet
        best = None
        for i in range(2, len(word) - 1):
            head, modifier = word[i:], word[:i]
            if not wn.synsets(head, "n") or not wn.synsets(modifier):
                continue
            joined = bool(wn.synsets(f"{modifier}_{head}", "n"))
            key = (joined, min(len(head), len(modifier)))
            if best is None or key > best[0]:
                best = (key, (modifier, head))
        return best[1] if best else None

    def _senses(self, term: str, description: set[str]) -> list[tuple[Any, float, str]]:
        """``(synset, weight, how)`` for the noun senses of ``term``; a multiword term without an entry of its own
        falls back to its head noun's senses at a lower weight."""
        wn = self.wordnet
        key = normalize(term)
        if not key:
            return []
        how, factor = f"'{key}'", 1.0
        senses = wn.synsets(key.replace(" ", "_"), "n")
        if not senses and " " in key:
            head = key.split()[-1]
            senses, how, factor = wn.synsets(head, "n"), f"head noun '{head}' of '{key}'", 0.6
        physical = [s for s in senses if self._physical in _up(s)]
        senses = physical or senses
        out = []
        for rank, synset in enumerate(senses):
            weight = factor / (1 + rank)
            if description:
                gloss = set(self._lemmas(_words(synset.definition())))
                gloss |= {w for lemma in synset.lemma_names() for w in _words(lemma)}
                for hyper in synset.hypernyms():
                    gloss |= {w for lemma in hyper.lemma_names() for w in _words(lemma)}
                weight = min(1.0, weight * (1 + 2 * len(description & gloss) / len(description)))
            out.append((synset, weight, f"{how} sense {rank + 1}"))
        return out

    @staticmethod
    def _terms(label: Label) -> list[tuple[str, float]]:
        """The names to look up, with their weight: the name, then its synonyms."""
        return [(label.name, 1.0)] + [(s, 0.8) for s in label.synonyms]

    def suggest_label(self, label: Label, line: int | None = None) -> Suggestion:
        key = normalize(label.name)
        if key in CATCH_ALL:
            return Suggestion(label.id, label.name, "void", None, 1.0, True,
                              (Evidence("name", f"'{key}' names a catch-all, not a concept", 1.0),), (),
                              note="catch-all: list it under void, or make it the ignore value", line=line)
        evidence: dict[str, list[Evidence]] = {}

        def add(concept: str, kind: str, detail: str, strength: float) -> None:
            evidence.setdefault(concept, []).append(Evidence(kind, detail, strength))

        description = set(self._lemmas(_words(label.extra.get("description", ""))))
        given = label.extra.get("synset", "").strip()
        senses: list[tuple[Any, float, str]] = []
        terms = self._terms(label)
        # A closed compound is split only when WordNet knows none of the label's names as they are.
        known = any(self.wordnet.synsets(normalize(t).replace(" ", "_"), "n") for t, _ in terms)
        for term, weight in terms:
            for entry in self._lookup(term):
                kind = entry.kind if weight == 1.0 or entry.kind == "group" else "synonym"
                add(entry.concept, kind, f"'{normalize(term)}' = {entry.source}", STRENGTH[kind] * weight)
            word = normalize(term)
            if not known and " " not in word:
                parts = self._split(word)
                if parts is not None:
                    for part, role in zip(parts, ("modifier", "head"), strict=True):
                        for entry in self._lookup(part):
                            scale = 1.0 if role == "head" else 0.8
                            add(entry.concept, "part", f"{role} '{part}' of '{word}' = {entry.source}",
                                STRENGTH["part"] * weight * scale)
                    word = " ".join(parts)
            if not given:
                senses += [(s, w * weight, f"{how}") for s, w, how in self._senses(word, description)]
        if given:
            senses = [(self.wordnet.synset(given), 1.0, "given synset")]  # checked by suggest_table
        best_sense: dict[Any, float] = {}
        for synset, weight, how in senses:
            if weight <= best_sense.get(synset, 0.0):
                continue
            best_sense[synset] = weight
            kind = "given synset" if how == "given synset" else "synset"
            for cid in self.by_synset.get(synset, ()):
                add(cid, kind, f"{synset.name()} ({how})", STRENGTH[kind] * weight)
            for cid, distance, path in self._hypernym_hits(synset):
                add(cid, "hypernym", f"{synset.name()} ({how}) is a kind of {path}", STRENGTH["hypernym"] * weight
                    * DECAY ** (distance - 1))
            for cid, distance in self.below.get(synset, ()):
                if distance > HYPONYM_STEPS:
                    continue
                add(cid, "hyponym", f"{self.synset_of[cid].name()} is a kind of {synset.name()} ({how})",
                    STRENGTH["hyponym"] * weight * DECAY ** (distance - 1))
        if description:
            weight = {w: self.idf.get(w, self._idf_default) for w in description}
            total = sum(weight.values()) or 1.0
            for cid, words in self.text.items():
                shared = description & words
                share = sum(weight[w] for w in shared) / total
                if share >= DESCRIPTION_SHARE:
                    add(cid, "description", f"shares {', '.join(sorted(shared))}", STRENGTH["description"] * share)
        ranked = self._rank(evidence)
        return self._decide(label, ranked, best_sense, line, bool(description))

    def _hypernym_hits(self, synset: Any) -> list[tuple[str, int, str]]:
        """The nearest concepts up each hypernym path of ``synset``: ``(concept, distance, path text)``."""
        hits, seen, frontier, distance = [], {synset}, [(synset, (synset,))], 0
        while frontier:
            distance += 1
            nxt = []
            for node, path in frontier:
                for parent in node.hypernyms() + node.instance_hypernyms():
                    if parent in seen:
                        continue
                    seen.add(parent)
                    if parent in self.by_synset:
                        text = " -> ".join(s.name() for s in (*path[1:], parent))
                        hits += [(cid, distance, text) for cid in self.by_synset[parent]]
                    else:
                        nxt.append((parent, (*path, parent)))
            frontier = nxt
        return hits

    def _rank(self, evidence: dict[str, list[Evidence]]) -> list[Candidate]:
        out = []
        for cid, items in evidence.items():
            strongest: dict[str, Evidence] = {}
            for item in items:  # one piece of evidence per kind and detail; the strongest
                key = f"{item.kind}\x1f{item.detail}"
                if key not in strongest or item.strength > strongest[key].strength:
                    strongest[key] = item
            kept = sorted(strongest.values(), key=lambda e: -e.strength)
            miss = 1.0
            by_kind: dict[str, int] = {}
            for item in kept:
                # repeats of one kind (the same name in three datasets) count, but much less than a new kind
                repeat = by_kind.get(item.kind, 0)
                by_kind[item.kind] = repeat + 1
                miss *= 1.0 - item.strength * (0.25 ** repeat)
            out.append(Candidate(cid, 1.0 - miss, tuple(kept)))
        depth = {c.id: c.depth for c in self.taxonomy}
        order = {c.id: i for i, c in enumerate(self.taxonomy)}
        out.sort(key=lambda c: (-round(c.score, 6), depth[c.concept], order[c.concept]))
        return out

    def _decide(self, label: Label, ranked: list[Candidate], senses: dict[Any, float], line: int | None,
                described: bool = False) -> Suggestion:
        best = ranked[0] if ranked else None
        if best is not None and best.direct and best.score >= MATCH_SCORE:
            second = ranked[1].score if len(ranked) > 1 else 0.0
            # A match rests on firm ground when the label is named so in the tree, or its most common sense is there.
            firm = any(e.kind in ("name", "given synset") or (e.kind == "synset" and e.strength >= STRENGTH["synset"])
                       for e in best.evidence)
            close = best.score - second < CLOSE
            unsupported = described and not any(e.kind == "description" for e in best.evidence)
            review = best.score < SURE_SCORE or close or not firm or unsupported
            note = ("close to the next candidate" if close else "matched through a synonym or a rarer sense only"
                    if not firm else "the description shares nothing with it" if unsupported else "")
            return Suggestion(label.id, label.name, "match", best.concept, best.score, review, best.evidence,
                              tuple(ranked[1:3]), line=line, note=note)
        new = self._propose(label, ranked, senses)
        return Suggestion(label.id, label.name, "new", None, best.score if best else 0.0, True,
                          best.evidence if best else (), tuple(ranked[:2]), new=new,
                          note="no concept of the tree fits; a new concept is proposed", line=line)

    def _propose(self, label: Label, ranked: list[Candidate], senses: dict[Any, float]) -> NewConcept:
        tax = self.taxonomy
        synset = max(senses, key=lambda s: senses[s]) if senses else None
        # Where the best sense goes: below its nearest hypernym concepts, or beside the concepts directly below it
        # (bedclothes beside blanket); the deepest of them, as the most specific.
        places: dict[str, float] = {}
        if synset is not None:
            for cid, distance, _ in self._hypernym_hits(synset):
                places[cid] = max(places.get(cid, 0.0), DECAY ** (distance - 1))
            for cid, distance in self.below.get(synset, ()):
                parent = tax[cid].parent
                if distance == 1 and parent is not None:
                    places[parent] = max(places.get(parent, 0.0), STRENGTH["hyponym"] / STRENGTH["hypernym"])
        if places:
            parent = max(places, key=lambda p: (tax[p].depth, places[p]))
        elif ranked:
            parent = ranked[0].concept
        else:
            parent = tax.root
        cid = concept_id(label.name) or f"label_{label.id}"
        if cid in tax:
            cid = f"{cid}_new"
        placed = None
        if synset is not None:
            anchor = next((self.synset_of[a] for a in (parent, *tax.ancestors(parent)) if a in self.synset_of), None)
            placed = None if anchor is None else anchor in _up(synset)
        why = (f"{synset.name()}: {synset.definition()}" if synset is not None
               else "no WordNet 3.0 sense of the name; give a synset or null with a reason")
        return NewConcept(cid, label.name, parent, synset.name() if synset is not None else None, placed, why)

    def suggest(self, labels: Sequence[Label], lines: dict[int, int] | None = None) -> list[Suggestion]:
        lines = lines or {}
        return [self.suggest_label(label, lines.get(label.id)) for label in labels]


def _label_names(label: Label) -> list[str]:
    """A dataset label's names, its main name first: Mapillary's readable name stands in for ``a--b--c``."""
    readable = label.extra.get("readable", "").strip()
    main = readable or (label.name.split("--")[-1] if "--" in label.name else label.name)
    names = [main] + [s for s in label.synonyms if normalize(s) != normalize(main)]
    if readable and normalize(label.name.split("--")[-1]) not in {normalize(n) for n in names}:
        names.append(label.name.split("--")[-1])
    return names


_UP_CACHE: dict[Any, dict[Any, int]] = {}


def _up(synset: Any) -> dict[Any, int]:
    """Every hypernym (instance hypernyms included) of ``synset`` with its shortest distance; itself at 0."""
    cached = _UP_CACHE.get(synset)
    if cached is not None:
        return cached
    out, frontier, distance = {synset: 0}, [synset], 0
    while frontier:
        distance += 1
        nxt = []
        for node in frontier:
            for parent in node.hypernyms() + node.instance_hypernyms():
                if parent not in out:
                    out[parent] = distance
                    nxt.append(parent)
        frontier = nxt
    _UP_CACHE[synset] = out
    return out


@dataclass
class SuggestReport:
    dataset: str
    table: LabelTable
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def ignore(self) -> tuple[int, str] | None:
        """The row that names the ignore value (``void``, ``ignore``, ``unlabeled``), if the table has one."""
        for name in IGNORE_NAMES:
            for s in self.suggestions:
                if s.status == "void" and normalize(s.name) == name:
                    return s.id, s.name
        return None


def check_synsets(table: LabelTable, wordnet: Any) -> None:
    """Every ``synset`` the table gives must exist in WordNet 3.0; one problem per bad row."""
    from nltk.corpus.reader.wordnet import WordNetError

    problems = []
    for label in table.labels:
        given = label.extra.get("synset", "").strip()
        if not given:
            continue
        try:
            synset = wordnet.synset(given)
        except (WordNetError, ValueError):
            problems.append(f"{table.where(label.id)}: synset {given!r} of {label.name!r} is not in WordNet 3.0")
            continue
        if synset.pos() != "n":
            problems.append(f"{table.where(label.id)}: synset {given!r} of {label.name!r} is not a noun sense")
    if problems:
        raise ProblemList(problems)


def suggest_table(table: LabelTable, taxonomy: Taxonomy, wordnet: Any, dataset: str,
                  suggester: Suggester | None = None) -> SuggestReport:
    """Suggestions for every label of ``table``; pass a ``suggester`` to reuse its index across tables."""
    check_synsets(table, wordnet)
    suggester = suggester or Suggester(taxonomy, wordnet)
    return SuggestReport(dataset, table, suggester.suggest(table.labels, table.lines))


def key_accuracy(suggestions: Sequence[Suggestion], key: dict[int, Sequence[str]], k: int = 3) -> dict[str, Any]:
    """Top-1 and top-``k`` accuracy against a hand-written key (label id -> accepted answers: concept ids, or
    ``new:<parent>`` for a new concept under that parent); labels the key lacks are not scored."""
    scored = [s for s in suggestions if s.id in key]
    top1 = [s for s in scored if s.answer in key[s.id]]
    topk = [s for s in scored if set(s.ranked[:k]) & set(key[s.id])]
    return {"labels": len(scored), "top1": len(top1) / len(scored) if scored else float("nan"),
            f"top{k}": len(topk) / len(scored) if scored else float("nan"),
            "misses": [(s.id, s.name, s.answer, tuple(key[s.id])) for s in scored if s not in top1]}


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar


def _why(s: Suggestion) -> str:
    evidence = "; ".join(f"{e.kind} {e.detail}" for e in s.evidence[:2])
    alternatives = ", ".join(f"{c.concept} {c.score:.2f}" for c in s.alternatives)
    return (f"{'REVIEW ' if s.review else ''}{s.name} ({s.score:.2f}): {evidence}"
            + (f"; alternatives: {alternatives}" if alternatives else ""))


def spec_stub(report: SuggestReport, table: str, taxonomy: Taxonomy) -> str:
    """A dataset spec for ``build --add`` drafted from the suggestions, in ``merge.yaml``'s form: every label mapped
    or void, new concepts under ``added`` with a ``TODO`` reason the builder refuses until it is rewritten, and a
    comment per line with the score, the evidence and the alternatives (``REVIEW`` where a person must look)."""
    name = report.dataset
    ignore = report.ignore
    adds = any(s.status == "new" for s in report.suggestions)
    lines = [
        f"# Dataset spec for {name}, drafted by `hierseg taxonomy suggest` from {report.table.path.name}",
        f"# against the tree {taxonomy.artifact.get('name', 'tree')} ({len(taxonomy)} concepts).",
        "# Check every line marked REVIEW, replace every TODO, then build the extended tree:",
        "#   hierseg taxonomy build --add THIS_FILE --out tree.json" + (" --any-size  (it adds concepts)" if adds else ""),
        f"dataset: {name}",
        f"title: {_quote(name)}",
        f"table: {_quote(table)}",
        (f"ignore: {ignore[0]}  # the table's {ignore[1]!r} row" if ignore
         else "ignore: 255  # REVIEW: the table names no ignore value"),
        "# layout: folder  # how the files lie: folder (images/ + masks/) or an official layout such as pascal_voc",
    ]
    new = [s for s in report.suggestions if s.status == "new" and s.new is not None]
    if new:
        lines.append("added:")
        for s in new:
            assert s.new is not None
            reason = (f"{TODO}: WordNet does not put it below {s.new.parent}; say why it belongs there"
                      if s.new.placed is False else f"{TODO}: check the placement ({s.new.reason})")
            fields = [f"id: {s.new.id}", f"parent: {s.new.parent}", f"synset: {s.new.synset or 'null'}"]
            if s.new.placed is False:
                fields.append("exception: true")
            lines.append(f"  - {{{', '.join(fields)},")
            lines.append(f"     reason: {_quote(reason)}}}  # REVIEW {s.name}")
    void = [s for s in report.suggestions if s.status == "void" and (ignore is None or s.id != ignore[0])]
    if void:
        lines += ["void:", f"  {name}:"]
        lines += [f"    {s.id}: {_quote(f'{s.name}: a catch-all, no concept')}  # REVIEW" for s in void]
    lines += ["labels:", f"  {name}:"]
    for s in report.suggestions:
        if s.status == "void":
            continue
        concept = s.concept if s.status == "match" else s.new.id if s.new is not None else "TODO"
        lines.append(f"    {s.id}: {concept}  # {_why(s)}")
    return "\n".join(lines) + "\n"
