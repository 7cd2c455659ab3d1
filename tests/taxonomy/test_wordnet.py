from __future__ import annotations

import pytest

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.authoring.wordnet import DEBIAN_WORDNET, LEXNAMES, build_nltk_layout, lexnames_text


def test_lexnames_is_the_wordnet_30_list():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_layout_built_from_debian_is_readable_by_nltk(tmp_path):
    if not (DEBIAN_WORDNET / "data.noun").is_file():
        pytest.skip("Debian's wordnet-base is not installed on this machine (make test installs it as root)")
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = build_nltk_layout(DEBIAN_WORDNET, tmp_path / "nltk_data")
    corpus = root / "corpora" / "wordnet"
    assert not any(p.is_symlink() for p in corpus.iterdir())
    assert {"data.noun", "index.noun", "index.sense", "noun.exc", "lexnames"} <= {p.name for p in corpus.iterdir()}
    nltk.data.path.append(str(root))
    try:
        with pytest.warns(UserWarning, match="multilingual"):
            reader = WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)
        dog = reader.synset("dog.n.01")
        assert reader.get_version() == "3.0"
        assert reader.synset("animal.n.01") in dog.closure(lambda s: s.hypernyms())
        assert dog.lexname() == "noun.animal"
    finally:
        nltk.data.path.remove(str(root))


def test_missing_database_says_how_to_install(tmp_path):
    with pytest.raises(HiersegError, match="apt-get install wordnet-base wordnet-sense-index"):
        build_nltk_layout(tmp_path / "nowhere", tmp_path / "out")


def test_loaded_wordnet_is_30(wordnet):
    assert wordnet.get_version() == "3.0"
