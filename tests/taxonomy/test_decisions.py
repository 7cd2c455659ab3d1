"""Decision plans: what top-down inference may choose and where pixels rest, worked out by hand on the toy tree;
no label of the real tree's four datasets is unreachable; a plan that lacks a self output shows up as unpredictable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hierseg.taxonomy import NeuronGraph, Taxonomy
from hierseg.taxonomy.decisions import decision_plan
from tests.taxonomy.toy import toy_taxonomy


@pytest.fixture(scope="module")
def toy() -> NeuronGraph:
    return NeuronGraph(toy_taxonomy())


def concepts(graph: NeuronGraph, mask: np.ndarray) -> set[str]:
    return {graph.concepts[i] for i in np.flatnonzero(mask)}


def test_tree_plan_allows_every_output_and_rests_where_decided(toy):
    plan = decision_plan(toy)
    assert plan.allowed[toy.index["vehicle"]].tolist() == [True, True, True]
    assert plan.allowed[toy.index["root"]].tolist() == [True, True, False]  # padding beyond its two outputs
    # leaves, plus the three concepts with a self output
    assert concepts(toy, plan.terminals()) == {"dog", "cat", "car", "bus", "lane", "crosswalk", "sky",
                                               "animal", "vehicle", "road"}
    assert plan.reachable_neurons().all()
    assert plan.unpredictable(toy) == ()


def test_dataset_plans(toy):
    coarse = decision_plan(toy, "coarse")
    # coarse stops at animal and road (labelled, nothing defined below) and never runs their neurons
    assert concepts(toy, coarse.terminals()) == {"animal", "car", "bus", "road", "sky"}
    assert concepts(toy, coarse.stop) >= {"animal", "road", "sky"}
    assert not coarse.reachable_neurons()[[toy.index["animal"], toy.index["road"]]].any()
    # coarse labels car and bus but not vehicle: vehicle's self output is not a coarse answer
    assert coarse.allowed[toy.index["vehicle"]].tolist() == [True, True, False]
    nested = decision_plan(toy, "nested")
    assert nested.allowed[toy.index["vehicle"]].tolist() == [True, False, True]  # car or vehicle itself
    assert concepts(toy, nested.terminals()) == {"vehicle", "car"}
    assert nested.label[toy.concept_index["vehicle"]] == 0 and nested.label[toy.concept_index["bus"]] == 255
    for name in ("coarse", "fine", "nested"):
        assert decision_plan(toy, name).unpredictable(toy) == ()


def test_a_missing_self_output_makes_the_nested_label_unpredictable(toy):
    plan = decision_plan(toy, "nested")
    allowed = plan.allowed.copy()
    allowed[toy.index["vehicle"], toy["vehicle"].self_index] = False  # what the paper's neurons could do
    assert dataclasses.replace(plan, allowed=allowed).unpredictable(toy) == (0,)  # vehicle


def test_chains_without_a_decision():
    # root -> a (one child, unlabelled: no neuron) -> b (leaf, labelled) ; root -> c (leaf)
    tax = Taxonomy({"root": "root", "datasets": {"d": {"ignore": 0, "void": {}}}, "concepts": [
        {"id": "root", "name": "root", "parent": None, "depth": 0},
        {"id": "a", "name": "a", "parent": "root", "depth": 1},
        {"id": "b", "name": "b", "parent": "a", "depth": 2, "labels": {"d": [1]}},
        {"id": "c", "name": "c", "parent": "root", "depth": 1, "labels": {"d": [2]}}]})
    graph = NeuronGraph(tax)
    assert graph.inseparable == ("b",)
    # the dataset's label b is reached through a without a decision; the tree stops at a, the deepest decision
    assert concepts(graph, decision_plan(graph, "d").terminals()) == {"b", "c"}
    assert concepts(graph, decision_plan(graph).terminals()) == {"a", "c"}


@pytest.mark.parametrize("dataset", ["coco_stuff", "ade20k", "cityscapes", "mapillary"])
def test_every_label_of_the_real_datasets_is_predictable(dataset):
    graph = NeuronGraph(Taxonomy.load())
    plan = decision_plan(graph, dataset)
    assert plan.unpredictable(graph) == ()
    labelled = {c for c in graph.space(dataset).concepts.values() if c is not None}
    assert concepts(graph, plan.terminals()) == labelled  # and nothing else: every answer is one of its labels
