"""WordNet 3.0 provisioning for the taxonomy builder.

Lookup order, first hit wins:
1. nltk's own ``wordnet`` corpus (``nltk.download('wordnet')`` or an ``NLTK_DATA`` folder holding it);
2. an nltk_data layout built in a cache folder from Debian's ``/usr/share/wordnet``
   (packages ``wordnet-base`` and ``wordnet-sense-index``);
3. a one-line ``HiersegError`` saying how to install it.

nltk refuses symlinks outside its search path, so the Debian files are copied, not linked. Debian does not
ship the ``lexnames`` file nltk needs, so it is written from the fixed WordNet 3.0 list (``man 5 lexnames``).
"""

from __future__ import annotations

import os
import shutil
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_text

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "WordNet 3.0 not found: install it with `apt-get install wordnet-base wordnet-sense-index` "
    "or `python -m nltk.downloader wordnet`"
)

# The 45 lexicographer files of WordNet 3.0, in file-number order: (name, syntactic category).
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1),
    ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1), ("noun.possession", 1),
    ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1), ("noun.shape", 1),
    ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2), ("verb.change", 2),
    ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)

_REQUIRED = ("data.noun", "index.noun", "index.sense", "noun.exc")


def cache_dir() -> Path:
    """Where the nltk_data layout built from Debian's files lives (``$HIERSEG_CACHE`` or XDG cache)."""
    root = os.environ.get("HIERSEG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hierseg"
    )
    return Path(root) / "nltk_data"


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))


def build_nltk_layout(source: Path = DEBIAN_WORDNET, target: Path | None = None) -> Path:
    """Copy a WordNet 3.0 database folder into ``<target>/corpora/wordnet`` and return ``target``."""
    target = target or cache_dir()
    missing = [name for name in _REQUIRED if not (source / name).is_file()]
    if missing:
        raise HiersegError(f"{source}: not a WordNet 3.0 database (missing {', '.join(missing)}); {INSTALL_HINT}")
    corpus = target / "corpora" / "wordnet"
    corpus.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and (path.name.startswith(("data.", "index.")) or path.suffix == ".exc"):
            dest = corpus / path.name
            if not dest.exists() or dest.stat().st_size != path.stat().st_size:
                tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")  # two processes may provision at once
                shutil.copyfile(path, tmp)
                os.replace(tmp, dest)
    atomic_write_text(corpus / "lexnames", lexnames_text())
    return target


def _try_nltk(extra_root: Path | None = None) -> Any | None:
    """An nltk reader for the first ``corpora/wordnet`` on nltk's data path (plus ``extra_root``)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if extra_root is not None and str(extra_root) not in nltk.data.path:
        # nltk only opens corpora under a folder on its data path (its path sandbox).
        nltk.data.path.append(str(extra_root))
    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            root = nltk.data.find(resource)
        except LookupError:
            continue
        with warnings.catch_warnings():
            # Without the Open Multilingual Wordnet nltk warns once; English WordNet is all the builder uses.
            warnings.simplefilter("ignore", UserWarning)
            return WordNetCorpusReader(root, None)
    return None


@lru_cache(maxsize=1)
def load_wordnet() -> Any:
    """Return an nltk ``WordNetCorpusReader`` for WordNet 3.0, provisioning it from Debian if needed."""
    try:
        import nltk  # noqa: F401
    except ImportError as exc:  # pragma: no cover - nltk is a runtime dependency
        raise HiersegError(f"nltk is not installed ({exc}); run `pip install nltk`") from exc
    reader = _try_nltk()
    if reader is None:
        cached = cache_dir()
        if not (cached / "corpora" / "wordnet" / "lexnames").is_file():
            if not DEBIAN_WORDNET.is_dir():
                raise HiersegError(INSTALL_HINT)
            build_nltk_layout(DEBIAN_WORDNET, cached)
        reader = _try_nltk(cached)
        if reader is None:
            raise HiersegError(INSTALL_HINT)
    version = reader.get_version()
    if version != "3.0":
        raise HiersegError(f"WordNet {version} found, but the taxonomy is specified against WordNet 3.0; {INSTALL_HINT}")
    return reader
