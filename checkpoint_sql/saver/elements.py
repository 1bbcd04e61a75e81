"""List-valued channels stored element by element, so a new version costs what it adds.

A message list under ``add_messages`` changes at every step, and a saver that stores
each version whole stores the conversation again at every checkpoint: storage, and
the work of every `put`, grow with the square of the conversation. Here a value the
serializer wrote as a msgpack array (``JsonPlusSerializer``'s ``"msgpack"`` type) is
cut at its element boundaries, which msgpack's own unpacker finds without decoding;
each element's bytes are stored once per thread and namespace, keyed by their
SHA-256 (truncated to 16 bytes), and the version is stored as the array header plus
a *manifest* of element digests. Loading joins the very same bytes again, so the
serializer reads back byte for byte what it wrote: nothing about the value is
interpreted, and values of any other type (encrypted ones, ``"msgpack+aes"``,
included: their bytes share nothing) keep the one-blob form.

A flat manifest would still grow with the list at every version, so full runs of
`PAGE` digests are stored as *pages*, parts like the elements (content-addressed,
written once), and a manifest lists its pages' digests and then the few digests of
the tail. An append-only list keeps its pages from one version to the next, so a
`put` writes the new elements, a manifest of about ``n / PAGE + PAGE`` digests, and
now and then one page.

This module is pure: it cuts, digests and joins bytes; `codec` decides which blobs
are cut, `operations` fetches parts, and `PartCache` remembers what is stored.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import msgpack

SPLIT_TYPE = "msgpack"
"""The serde type whose arrays are cut (LangGraph's `JsonPlusSerializer`)."""
SPLIT_MIN_BYTES = 16 * 1024
"""Smaller values stay whole. Each part costs a row, a key in the index and a few
more pages for the commit to write, so a put that stores a list cut into parts
costs more than one storing it whole until most of its elements are shared with
the previous version, which is what long lists buy: on SQLite, a first put of an 8
kB list of 24 messages took 1.0 ms cut against 0.6 ms whole. Below this size a
list is stored whole at every version, so storage grows with at most this many
bytes per checkpoint."""
MIN_ELEMENT_BYTES = 48
"""Arrays of smaller elements on average (a list of ints, say) stay whole: a part's
key would outweigh its bytes."""
PAGE = 32
"""Digests per page; a manifest lists at most ``PAGE - 1`` digests of its tail."""
DIGEST = 16

_COUNT = struct.Struct("<I")
_ARRAY_HEADERS = frozenset((0xDC, 0xDD, *range(0x90, 0xA0)))
"""First bytes of a msgpack array: fixarray, array 16, array 32."""


@dataclass(frozen=True, slots=True)
class Split:
    """A value cut into parts: what its blob row stores, the parts it adds, and
    enough of the cut to cut the channel's next version faster (`split`'s `previous`)."""

    header: bytes
    """The msgpack array header, stored in the blob row's ``blob``."""
    manifest: bytes
    """The page count, page digests and tail digests, stored in ``manifest``."""
    parts: dict[bytes, bytes]
    """Digest to bytes of the elements and pages the manifest reaches (those it
    shares with `previous` left out)."""
    body: bytes
    """The elements' bytes, everything after the header."""
    ends: list[int]
    """Where each element ends in `body`."""
    digests: list[bytes]
    """Each element's digest, in order."""
    pages: list[bytes]
    """The digests of the full pages."""


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:DIGEST]


Digester = Callable[[bytes], bytes]


def split(type_: str, data: bytes | None, digest: Digester = digest_of, previous: Split | None = None) -> Split | None:
    """`data` cut at its element boundaries, or None when it stays one blob.

    `digest` maps bytes to their digest (`PartCache` answers from memory for bytes it
    has seen). `previous` is the channel's last version, if known to be stored: when
    this version starts with the same elements (a list that grew), their offsets,
    digests and pages are taken from it after one comparison of bytes, and only the
    new elements are cut and digested; `Split.parts` then holds only what is new.
    """
    if type_ != SPLIT_TYPE or data is None or len(data) < SPLIT_MIN_BYTES or data[0] not in _ARRAY_HEADERS:
        return None
    try:
        unpacker = msgpack.Unpacker(max_buffer_size=len(data))
        unpacker.feed(data)
        count = unpacker.read_array_header()
        if count == 0 or len(data) < count * MIN_ELEMENT_BYTES:
            return None
        start = unpacker.tell()
        ends: list[int] = []
        digests: list[bytes] = []
        pages: list[bytes] = []
        shift = -start
        if previous is not None and len(previous.digests) <= count and data.startswith(previous.body, start):
            ends, digests, pages = list(previous.ends), list(previous.digests), list(previous.pages)
            shift = len(previous.body)
            unpacker = msgpack.Unpacker(max_buffer_size=len(data))
            unpacker.feed(data[start + shift :])
        for _ in range(count - len(ends)):
            unpacker.skip()
            ends.append(shift + unpacker.tell())
    except (ValueError, msgpack.UnpackException):
        return None  # not msgpack after all (another serializer's "msgpack" bytes): keep them whole
    body = data[start:]
    if (ends[-1] if ends else 0) != len(body):
        return None
    parts: dict[bytes, bytes] = {}
    for i in range(len(digests), count):
        element = body[ends[i - 1] if i else 0 : ends[i]]
        key = digest(element)
        parts[key] = element
        digests.append(key)
    full = count - count % PAGE
    for first in range(len(pages) * PAGE, full, PAGE):
        page = b"".join(digests[first : first + PAGE])
        key = digest(page)
        parts[key] = page
        pages.append(key)
    manifest = b"".join((_COUNT.pack(len(pages)), *pages, *digests[full:]))
    return Split(data[:start], manifest, parts, body, ends, digests, pages)


def pages_of(manifest: bytes) -> list[bytes]:
    """The page digests a manifest lists."""
    (count,) = _COUNT.unpack_from(manifest)
    return digests_in(manifest[_COUNT.size : _COUNT.size + count * DIGEST])


def tail_of(manifest: bytes) -> list[bytes]:
    """The element digests a manifest lists after its pages."""
    (count,) = _COUNT.unpack_from(manifest)
    return digests_in(manifest[_COUNT.size + count * DIGEST :])


def elements_of(manifest: bytes, parts: Mapping[bytes, bytes]) -> list[bytes]:
    """Every element digest of a manifest, in order; its pages must be in `parts`."""
    return [d for page in pages_of(manifest) for d in digests_in(parts[page])] + tail_of(manifest)


def join(header: bytes, manifest: bytes, parts: Mapping[bytes, bytes]) -> bytes:
    """The value's bytes again, exactly as the serializer wrote them."""
    return join_in_order(header, elements_of(manifest, parts), parts)


def join_in_order(header: bytes, digests: Iterable[bytes], parts: Mapping[bytes, bytes]) -> bytes:
    """`join`, for a caller that has expanded the manifest (`elements_of`) already."""
    return b"".join((header, *(parts[d] for d in digests)))


def digests_in(packed: bytes) -> list[bytes]:
    """The digests packed one after the other in a page (or a manifest's run)."""
    return [packed[i : i + DIGEST] for i in range(0, len(packed), DIGEST)]


Namespace = tuple[bytes, bytes]
"""(thread key, namespace key): parts are stored, and shared, per namespace of a thread."""


class PartCache:
    """Parts this saver knows are stored, per namespace, by digest and by bytes.

    Parts are immutable and named by their content, so what is cached can never be
    stale. A `put` leaves out of its INSERT the parts it finds here and digests no
    bytes it has seen before: a long conversation's unchanged elements cost a
    dictionary lookup instead of a hash and a round trip of their bytes. A read takes
    the parts it finds here from memory and fetches only the others.

    Entries are added only after the transaction that stored (or the read that
    returned) them, and a thread's entries are dropped whenever this saver deletes
    from it, so a part a put leaves out is one a checkpoint of the namespace still
    points at. (A put derived from a checkpoint that another process deletes at that
    very moment may point at parts that go with it, exactly as it may point at that
    checkpoint's blobs.)

    Bounded by the bytes it holds (least recently used namespaces go first);
    thread-safe.
    """

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._namespaces: OrderedDict[Namespace, _Known] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        with _LIVE_LOCK:
            _LIVE.add(self)

    def view(self, namespace: Namespace) -> View:
        """What `split` may take from this cache for a put in `namespace`."""
        with self._lock:
            known = self._namespaces.get(namespace)
        if known is None:
            return View(digest_of, {})
        by_bytes = known.by_bytes  # read without the lock: a dict lookup is atomic

        def digest(data: bytes) -> bytes:
            found = by_bytes.get(data)
            return digest_of(data) if found is None else found

        return View(digest, dict(known.latest))

    def unknown(self, namespace: Namespace, parts: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
        """The parts of `parts` not known to be stored in `namespace`."""
        with self._lock:
            known = self._namespaces.get(namespace)
            if known is None:
                return dict(parts)
            return {d: data for d, data in parts.items() if d not in known.by_digest}

    def latest(self, namespace: Namespace, channel: str, manifest: bytes) -> Split | None:
        """The last version this saver stored in `channel`, if `manifest` is its
        manifest (a manifest names its value's bytes exactly)."""
        with self._lock:
            known = self._namespaces.get(namespace)
            split = None if known is None else known.latest.get(channel)
        return split if split is not None and split.manifest == manifest else None

    def validate(self, namespace: Namespace, read: Reached | None, fetched: Mapping[bytes, bytes]) -> None:
        """Keep of `namespace` only what a read of its checkpoint just found stored:
        the parts `read` reaches, from `fetched` (what the read took from the database)
        or from what was known already.

        The next put of a resumed thread derives from that checkpoint, so it relies on
        no part the read did not see: whatever another process deleted since this
        cache learnt it is forgotten here. `read` None: the namespace has no
        checkpoint any more.
        """
        with self._lock:
            old = self._namespaces.pop(namespace, None) or _Known()
            self._bytes -= old.size
            if read is None:
                return
            if not fetched and old.by_digest.keys() == read.digests and read.latest >= old.latest.keys():
                self._keep(namespace, old)  # the read found exactly what is known: nothing to forget
                return
            kept = _Known()
            for d in read.digests:
                data = fetched.get(d) or old.by_digest.get(d)
                if data is not None:
                    kept.add(d, data)
            for channel in read.latest & old.latest.keys():
                kept.remember(channel, old.latest[channel])
            self._keep(namespace, kept)

    def recall(self, namespace: Namespace, digests: Iterable[bytes], into: dict[bytes, bytes]) -> None:
        """Copy into `into` the parts of `digests` this cache holds."""
        with self._lock:
            known = self._namespaces.get(namespace)
            if known is None:
                return
            self._namespaces.move_to_end(namespace)
            by_digest = known.by_digest
            into.update((d, by_digest[d]) for d in digests if d in by_digest)

    def learn(
        self, namespace: Namespace, parts: Mapping[bytes, bytes], latest: Mapping[str, Split] | None = None
    ) -> None:
        """Remember `parts` as stored in `namespace`, and `latest` as the last stored
        version of their channels."""
        if not parts and not latest:
            return
        with self._lock:
            known = self._namespaces.pop(namespace, None) or _Known()
            self._bytes -= known.size
            for d, data in parts.items():
                known.add(d, data)
            for channel, split in (latest or {}).items():
                known.remember(channel, split)
            self._keep(namespace, known)

    def _keep(self, namespace: Namespace, known: _Known) -> None:
        """Store `known` as the most recently used namespace, then evict the least
        recently used ones beyond `max_bytes`. The caller holds the lock."""
        if not known.by_digest and not known.latest:
            return
        self._namespaces[namespace] = known
        self._bytes += known.size
        while self._bytes > self.max_bytes and self._namespaces:
            _, dropped = self._namespaces.popitem(last=False)
            self._bytes -= dropped.size

    def forget_threads(self, thread_keys: Collection[bytes] | None = None) -> None:
        """Drop the entries of these threads (None: of every thread)."""
        with self._lock:
            for namespace in [n for n in self._namespaces if thread_keys is None or n[0] in thread_keys]:
                self._bytes -= self._namespaces.pop(namespace).size


_LIVE: weakref.WeakSet[PartCache] = weakref.WeakSet()
"""Every part cache alive in this process (see `forgetting`)."""
_LIVE_LOCK = threading.Lock()


def forgetting(thread_keys: Collection[bytes] | None) -> Callable[[object], None]:
    """Drop these threads' entries (None: every thread's) from every part cache of
    the process, now, and again through the returned callback once the deleting (or
    overwriting) transaction is over: parts it removes must not be left out by a
    later put.

    Every cache, not only the deleting saver's: another saver of the process (a
    sweeper's, a request handler's) may know the deleted parts, and would skip them in
    its next put, leaving a checkpoint whose elements are gone. Savers on other
    databases lose entries for nothing, which costs them re-sending a list once.
    """
    _forget_everywhere(thread_keys)
    return lambda _: _forget_everywhere(thread_keys)


def _forget_everywhere(thread_keys: Collection[bytes] | None) -> None:
    with _LIVE_LOCK:
        caches = list(_LIVE)
    for cache in caches:
        cache.forget_threads(thread_keys)


@dataclass(slots=True)
class Reached:
    """What a read of one namespace found its lists reach (`PartCache.validate`)."""

    digests: set[bytes] = field(default_factory=set)
    """Every part the manifests read reach."""
    latest: set[str] = field(default_factory=set)
    """Channels whose value read is the last one this saver stored."""


@dataclass(frozen=True, slots=True)
class View:
    """A put's look at the cache: `digest` for `split`, and each channel's last
    stored version, its `previous`."""

    digest: Digester
    latest: dict[str, Split]


@dataclass(slots=True)
class _Known:
    """One namespace's entries; `size` counts the bytes they hold."""

    by_bytes: dict[bytes, bytes] = field(default_factory=dict)
    by_digest: dict[bytes, bytes] = field(default_factory=dict)
    latest: dict[str, Split] = field(default_factory=dict)
    size: int = 0

    def add(self, digest: bytes, data: bytes) -> None:
        if digest not in self.by_digest:
            self.by_digest[digest] = data
            self.by_bytes[data] = digest
            self.size += len(data)

    def remember(self, channel: str, split: Split) -> None:
        replaced = self.latest.get(channel)
        self.latest[channel] = split
        self.size += len(split.body) - (0 if replaced is None else len(replaced.body))
