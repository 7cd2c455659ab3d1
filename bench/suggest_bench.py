"""`taxonomy suggest`: time for PASCAL-Context's 459 labels with WordNet loaded once, and accuracy on label sets the
tree was not built from, against baselines measured in the same run.

    python bench/suggest_bench.py [--repeat 3]

1. Time: loading WordNet, indexing the tree, suggesting the 459 labels; against the bare WordNet noun lookups of
   the same names (the least any WordNet-based suggester does), and the whole command as a user runs it.
2. Accuracy: top-1 and top-3 against the hand-written key (tests/taxonomy/data/suggest_key.csv) on PASCAL VOC 2012's
   20 classes and PASCAL-Context-59; against a names-only baseline (a label's normalised name looked up among the
   tree's concept and label names, no WordNet).
3. Accuracy against the reviewed specs of the optional datasets (taxonomy/specs/<name>.yaml, each label's concept,
   ``new:<parent>`` for a concept the spec adds, ``void`` for a void label), on their official tables: MSeg's six
   held-out test datasets (VOC 2012 with its background, CamVid-11, KITTI, WildDash v1, ScanNet-20's NYU40 ids,
   PASCAL-Context-60), with the same names-only baseline.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "taxonomy" / "data"


def context_table(folder: Path, which: str) -> Path:
    """A label table of PASCAL-Context (459: every class; 59: labels.txt names, 59_labels.txt names as synonyms)."""
    rows = list(csv.DictReader((DATA / f"pascal_context_{which}.csv").open(encoding="utf-8")))
    path = folder / f"pascal_context_{which}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "synonyms"])
        for row in rows:
            other = row.get("name_in_59_labels", row["name"])
            writer.writerow([row["id"], row["name"], other if other != row["name"] else ""])
    return path


def read_key(dataset: str) -> dict[int, tuple[str, ...]]:
    rows = [r for r in csv.DictReader((DATA / "suggest_key.csv").open(encoding="utf-8")) if r["dataset"] == dataset]
    return {int(r["id"]): (r["concept"], *(a for a in r["also"].split(";") if a)) for r in rows}


SPECS = ("pascal_voc", "camvid", "kitti", "wilddash", "scannet", "pascal_context")


def spec_key(name: str):
    """A reviewed spec as a key: its table, and per label the one answer the spec gives."""
    from hierseg.taxonomy.authoring.extend import load_addition
    from hierseg.taxonomy.specs import SPEC_DIR

    addition = load_addition(SPEC_DIR / f"{name}.yaml")
    parents = {c.id: c.parent for c in addition.merge.added}
    key = {m.label_id: (f"new:{parents[m.concept]}" if m.concept in parents else m.concept,)
           for m in addition.merge.labels}
    key.update({label_id: ("void",) for label_id in addition.merge.void.get(name, {})})
    return addition.table.path, key


def names_only(suggester, labels) -> list[tuple[str, ...]]:
    """The baseline: the concepts whose own or dataset-label names equal the label's name (first three)."""
    from hierseg.taxonomy.authoring.labeltable import normalize

    out = []
    for label in labels:
        found = []
        for entry in suggester.names.get(normalize(label.name), []):
            if entry.concept not in found:
                found.append(entry.concept)
        out.append(tuple(found[:3]) or ("void",))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    from hierseg.taxonomy.authoring.wordnet import load_wordnet

    wordnet = load_wordnet()
    wordnet.synsets("dog")  # nltk reads its index lazily: the first lookup is part of loading
    load_s = time.perf_counter() - start
    from hierseg.taxonomy import Taxonomy
    from hierseg.taxonomy.authoring.labeltable import normalize, read_label_table
    from hierseg.taxonomy.authoring.suggest import Suggester, suggest_table
    from hierseg.taxonomy.specs import SPEC_DIR

    taxonomy = Taxonomy.load()
    start = time.perf_counter()
    suggester = Suggester(taxonomy, wordnet)
    index_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        t459 = read_label_table(context_table(Path(tmp), "459"))
        t59 = read_label_table(context_table(Path(tmp), "59"))
        suggest_s, lookup_s = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = suggest_table(t459, taxonomy, wordnet, "pascal_context", suggester)
            suggest_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            for label in t459.labels:
                wordnet.synsets(normalize(label.name).replace(" ", "_"), "n")
            lookup_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hierseg.cli.main", "taxonomy", "suggest", "--labels",
                        str(Path(tmp) / "pascal_context_459.csv"), "--format", "json", "--out",
                        str(Path(tmp) / "out.json")], check=True, capture_output=True)
        command_s = time.perf_counter() - start

        n = len(t459.labels)
        best, lookups = min(suggest_s), min(lookup_s)
        counts = {s: sum(x.status == s for x in report.suggestions) for s in ("match", "new", "void")}
        print(f"PASCAL-Context, {n} labels: {counts['match']} matched, {counts['new']} new concepts, "
              f"{counts['void']} void, {sum(x.review for x in report.suggestions)} flagged for review\n")
        print("1. time, best of", args.repeat, "                          seconds   ms/label   vs lookups")
        print(f"   WordNet loaded (once)                          {load_s:8.3f}")
        print(f"   tree indexed (once)                            {index_s:8.3f}")
        print(f"   bare WordNet noun lookups of the {n} names     {lookups:8.3f}   {1e3 * lookups / n:8.3f}     1.00")
        print(f"   suggest, {n} labels                            {best:8.3f}   {1e3 * best / n:8.3f}   "
              f"{best / lookups:6.2f}")
        print(f"   `hierseg taxonomy suggest` command, end to end {command_s:8.3f}")

        print("\n2. accuracy against the key         labels   top-1   top-3   names-only top-1   top-3")
        tables = {"pascal_voc2012": read_label_table(SPEC_DIR / "pascal_voc2012.csv"), "pascal_context_59": t59}
        for dataset, table in tables.items():
            accuracy_row(f"{dataset:30s}", "key", table, read_key(dataset), taxonomy, wordnet, dataset, suggester)

        print("\n3. accuracy against the reviewed specs      labels   top-1   top-3   names-only top-1   top-3")
        for dataset in SPECS:
            path, key = spec_key(dataset)
            accuracy_row(f"{dataset + ' (' + path.name + ')':38s}", "spec", read_label_table(path), key, taxonomy,
                         wordnet, dataset, suggester)


def accuracy_row(title: str, against: str, table: Any, key: dict[int, tuple[str, ...]], taxonomy: Any, wordnet: Any,
                 dataset: str, suggester: Any) -> None:
    """One line of sections 2 and 3: the suggester's top-1/top-3 against ``key`` beside the names-only baseline's,
    then its misses."""
    from hierseg.taxonomy.authoring.suggest import key_accuracy, suggest_table

    full = key_accuracy(suggest_table(table, taxonomy, wordnet, dataset, suggester).suggestions, key)
    base = names_only(suggester, table.labels)
    scored = [(lab.id, ranked) for lab, ranked in zip(table.labels, base, strict=True) if lab.id in key]
    top1 = sum(r[0] in key[i] for i, r in scored) / len(scored)
    top3 = sum(bool(set(r) & set(key[i])) for i, r in scored) / len(scored)
    print(f"   {title} {full['labels']:6d}   {full['top1']:5.3f}   {full['top3']:5.3f}   {top1:16.3f}   {top3:5.3f}")
    for label_id, name, answer, accepted in full["misses"]:
        print(f"      miss: {label_id} {name}: suggested {answer}, {against} {' | '.join(accepted)}")


if __name__ == "__main__":
    main()
