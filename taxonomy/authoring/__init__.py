"""Authoring tools for the concept tree: what builds, extends, checks, compares, draws and exports it, and what
turns annotation folders from one label space into another.

They serve the people who make and maintain a tree (and the CLI commands that do it); nothing at training or
evaluation time imports them: the runtime core one level up (:mod:`hierseg.taxonomy`) loads a built tree and works
with it alone, and ``tests/test_structure.py`` keeps it so. Building needs WordNet 3.0
(:mod:`hierseg.taxonomy.authoring.wordnet`); using a built tree does not.
"""
