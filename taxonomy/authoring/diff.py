"""What changed between two trees, as before -> after paths (for review and release notes)."""

from __future__ import annotations

from hierseg.taxonomy.tree import Taxonomy


def _path(taxonomy: Taxonomy, concept: str | None) -> str:
    return "/".join(taxonomy.path(concept)) if concept is not None and concept in taxonomy else ""


def diff_trees(old: Taxonomy, new: Taxonomy) -> list[dict[str, str]]:
    """One row per concept added, removed or moved (its parent changed; its descendants follow it unlisted) and per
    dataset label whose concept changed. Rows: ``kind`` (added, removed, moved, label), ``item``, ``before`` and
    ``after`` paths."""
    rows: list[dict[str, str]] = []
    for concept in old:
        if concept.id not in new:
            rows.append({"kind": "removed", "item": concept.id, "before": _path(old, concept.id), "after": ""})
        elif concept.parent != new[concept.id].parent:
            rows.append({"kind": "moved", "item": concept.id, "before": _path(old, concept.id),
                         "after": _path(new, concept.id)})
    for concept in new:
        if concept.id not in old:
            rows.append({"kind": "added", "item": concept.id, "before": "", "after": _path(new, concept.id)})
    for dataset in new.datasets:
        before = old.dataset_concepts(dataset) if dataset in old.datasets else {}
        after = new.dataset_concepts(dataset)
        for label_id in sorted(set(before) | set(after)):
            if before.get(label_id) != after.get(label_id):
                rows.append({"kind": "label", "item": f"{dataset}:{label_id}",
                             "before": _path(old, before.get(label_id)), "after": _path(new, after.get(label_id))})
    return rows
