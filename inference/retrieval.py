"""The knowledge a question may be answered from: imported passages plus the curated entries.

One search index per worker, built from every enabled passage (``knowledge``) and every enabled
curated entry (``FallbackRule``, written in our own words, so ``make run`` has knowledge with
nothing imported). It is rebuilt when either changes (version tokens in the shared cache): in the
background while the old index keeps answering, so a curator's edit never stalls a request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit

from inference.models import FallbackRule
from knowledge import versions
from knowledge.models import Alias, Passage
from knowledge.search import Document, Hit, KnowledgeIndex, focus_variants

logger = logging.getLogger(__name__)

CURATED_SOURCE = "MedBot curated entries"
CURATED_PUBLISHER = "MedBot"
RULE_PREFIX = "rule:"
# Indexes smaller than this are rebuilt in the request that notices a change (well under a
# second); larger ones (an imported MedQuAD: ~3 s) in the background while the old one answers.
SYNCHRONOUS_REBUILD_BELOW = 2000


OVERVIEW_TITLE = re.compile(r"^What is \(are\) (.+?)\s*\?$")
# ...and asks of its leaflets "What causes What I need to know about Hepatitis C?".
LEAFLET_IN_TITLE = re.compile(r"(?<=\S )What I need to know about (?=\S)", re.I)


@dataclass(frozen=True)
class Citation:
    """Where an answer came from, as stored on the message and shown under it."""

    title: str
    publisher: str
    url: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def citation_for(document: Document) -> Citation:
    # Only web addresses leave MedBot as links: an API client may render them, so a javascript:
    # or data: address (the importer refuses them; older rows might hold one) is dropped.
    url = document.url if urlsplit(document.url).scheme.lower() in ("http", "https") else ""
    return Citation(title=cited_title(document.title), publisher=document.publisher, url=url, source=document.source)


def cited_title(title: str) -> str:
    """A passage's title as citations show it. MedQuAD titles its overviews "What is (are) Kidney
    Disease?": the topic itself reads better; "What causes What I need to know about Hepatitis C?"
    reads "What causes Hepatitis C?"."""
    return LEAFLET_IN_TITLE.sub("", OVERVIEW_TITLE.sub(r"\1", title))


def rule_id(document: Document) -> int | None:
    """The curated entry's primary key, for a document that is one."""
    return int(document.key.removeprefix(RULE_PREFIX)) if document.key.startswith(RULE_PREFIX) else None


def with_aliases(documents: list[Document], aliases: dict[str, list[str]]) -> list[Document]:
    """The documents with the aliases curators gave their topic (``knowledge.Alias``), by any name
    the focus goes by: an alias of "Hepatitis C" reaches "What I need to know about Hepatitis C"."""
    if not aliases:
        return documents
    result = []
    for document in documents:
        names = [name for variant in focus_variants(document.focus) for name in aliases.get(variant.lower(), ())]
        if names:
            names = list(dict.fromkeys(names))
            document = replace(document, synonyms=(*document.synonyms, *names), aliases=tuple(names))
        result.append(document)
    return result


def load_aliases() -> dict[str, list[str]]:
    """Enabled aliases by their topic, lower case: {"atrial fibrillation": ["afib"]}."""
    found: dict[str, list[str]] = {}
    for name, focus in Alias.objects.filter(enabled=True).order_by("pk").values_list("name", "focus"):
        found.setdefault(" ".join(focus.lower().split()), []).append(name)
    return found


def load_documents() -> list[Document]:
    """Every enabled curated entry and every passage of an enabled source, with their aliases."""
    documents = [
        Document(
            key=f"{RULE_PREFIX}{rule.pk}",
            title=rule.title,
            focus=rule.title,
            text=rule.answer,
            synonyms=tuple(rule.trigger_list()),
            source=CURATED_SOURCE,
            publisher=CURATED_PUBLISHER,
            priority=rule.priority,
        )
        for rule in FallbackRule.objects.filter(enabled=True).order_by("pk")
    ]
    passages = (
        Passage.objects.filter(source__enabled=True)
        .select_related("source")
        .order_by("pk")
        .only("pk", "title", "focus", "text", "synonyms", "question_type", "url", "source__name", "source__publisher")
    )
    documents += [
        Document(
            key=f"passage:{p.pk}",
            title=p.title,
            focus=p.focus,
            text=p.text,
            synonyms=tuple(p.synonym_list()),
            question_type=p.question_type,
            url=p.url,
            source=p.source.name,
            publisher=p.source.publisher,
        )
        for p in passages.iterator(chunk_size=2000)
    ]
    return with_aliases(documents, load_aliases())


class Retriever:
    """The worker's index, rebuilt when the knowledge or the curated entries change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: KnowledgeIndex | None = None
        self._version: tuple[str, str] | None = None
        self._building = False
        self._pinned = False

    @staticmethod
    def _current_version() -> tuple[str, str]:
        return versions.current(versions.RULES), versions.current(versions.KNOWLEDGE)

    def _build(self, version: tuple[str, str]) -> KnowledgeIndex:
        started = time.monotonic()
        index = KnowledgeIndex(load_documents())
        logger.info("Knowledge index built: %d documents in %.1f s", len(index), time.monotonic() - started)
        with self._lock:
            self._index, self._version = index, version
        return index

    def _rebuild_in_background(self, version: tuple[str, str]) -> None:
        def run() -> None:
            from django.db import connection

            try:
                self._build(version)
            except Exception:
                logger.exception("Rebuilding the knowledge index failed; the previous one keeps answering")
            finally:
                self._building = False
                connection.close()  # this thread's own connection

        self._building = True
        threading.Thread(target=run, name="knowledge-index", daemon=True).start()

    def index(self) -> KnowledgeIndex:
        if self._pinned and self._index is not None:
            return self._index
        version = self._current_version()
        with self._lock:
            current, building = self._index, self._building
        if current is not None and (version == self._version or versions.UNKNOWN in version):
            # Up to date, or neither the cache nor the tables can tell: keep answering from what we have.
            return current
        if current is None or len(current) < SYNCHRONOUS_REBUILD_BELOW:
            # The first build, or a small index (the curated entries alone: ~0.1 s): build now.
            return self._build(version)
        if not building:
            self._rebuild_in_background(version)
        return current

    def version(self) -> str:
        """The knowledge the index in use was built from (it may lag the latest change while a
        rebuild runs): answer-cache keys use this, so an answer from an old index is never
        cached under the new knowledge."""
        with self._lock:
            return "pinned" if self._pinned else ":".join(self._version or ("none",))

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        return self.index().search(question, limit=limit)

    @contextmanager
    def pinned(self, index: KnowledgeIndex) -> Iterator[KnowledgeIndex]:
        """Answer from ``index`` alone until the block ends, whatever the database holds: the
        evaluation searches a knowledge split it built in memory."""
        with self._lock:
            saved = self._index, self._version, self._pinned
            self._index, self._pinned = index, True
        try:
            yield index
        finally:
            with self._lock:
                self._index, self._version, self._pinned = saved

    def reset(self) -> None:
        """Forget the index (tests, and a curator's "rebuild now")."""
        with self._lock:
            self._index, self._version = None, None


retriever = Retriever()
