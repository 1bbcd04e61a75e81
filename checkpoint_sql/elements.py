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
import itertools
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import msgpack

SPLIT_TYPE = "msgpack"
"""The serde type whose arrays are cut (LangGraph's `JsonPlusSerializer`)."""
SPLIT_MIN_BYTES = 1024
"""Smaller values stay whole: a few rows cost more than the bytes they would share."""
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
    """A value cut into parts: what its blob row stores, and the parts it needs."""

    header: bytes
    """The msgpack array header, stored in the blob row's ``blob``."""
    manifest: bytes
    """The page count, page digests and tail digests, stored in ``elements``."""
    parts: dict[bytes, bytes]
    """Digest to bytes of every element and page the manifest reaches."""


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:DIGEST]


Digester = Callable[[bytes], bytes]


def split(type_: str, data: bytes | None, digest: Digester = digest_of) -> Split | None:
    """`data` cut at its element boundaries, or None when it stays one blob.

    `digest` maps bytes to their digest; `PartCache.digester` answers from memory for
    bytes it has seen, which spares hashing a long list's unchanged elements again.
    """
    if type_ != SPLIT_TYPE or data is None or len(data) < SPLIT_MIN_BYTES or data[0] not in _ARRAY_HEADERS:
        return None
    try:
        unpacker = msgpack.Unpacker(max_buffer_size=len(data))
        unpacker.feed(data)
        count = unpacker.read_array_header()
        if count == 0 or len(data) < count * MIN_ELEMENT_BYTES:
            return None
        offsets = [unpacker.tell()]
        for _ in range(count):
            unpacker.skip()
            offsets.append(unpacker.tell())
    except (ValueError, msgpack.UnpackException):
        return None  # not msgpack after all (another serializer's "msgpack" bytes): keep them whole
    if offsets[-1] != len(data):
        return None
    parts: dict[bytes, bytes] = {}
    digests = []
    for start, end in itertools.pairwise(offsets):
        element = data[start:end]
        key = digest(element)
        parts[key] = element
        digests.append(key)
    full = len(digests) - len(digests) % PAGE
    pages = []
    for start in range(0, full, PAGE):
        page = b"".join(digests[start : start + PAGE])
        key = digest(page)
        parts[key] = page
        pages.append(key)
    manifest = b"".join((_COUNT.pack(len(pages)), *pages, *digests[full:]))
    return Split(data[: offsets[0]], manifest, parts)


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
    return b"".join((header, *(parts[d] for d in elements_of(manifest, parts))))


def digests_in(packed: bytes) -> list[bytes]:
    """The digests packed one after the other in a page (or a manifest's run)."""
    return [packed[i : i + DIGEST] for i in range(0, len(packed), DIGEST)]


Namespace = tuple[bytes, bytes]
"""(thread key, namespace key): parts are stored, and shared, per namespace of a thread."""


class PartCache:
    """Parts this saver knows are stored, per namespace, with their digests.

    A `put` leaves out of its INSERT the parts it finds here and digests no bytes it
    has seen before: a long conversation's unchanged elements cost a dictionary
    lookup instead of a hash and a round trip of their bytes. Entries are added only
    after the transaction that stored (or the read that returned) them, and a
    thread's entries are dropped whenever this saver deletes from it, so a part
    found here is one a checkpoint of the namespace still points at. (A put derived
    from a checkpoint that another process deletes at that very moment may point at
    parts that go with it, exactly as it may point at that checkpoint's blobs.)

    Bounded by the bytes it holds (least recently used namespaces go first);
    thread-safe.
    """

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._namespaces: OrderedDict[Namespace, _Known] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def digester(self, namespace: Namespace) -> Digester:
        """A `digest` for `split` that answers from this cache where it can."""
        with self._lock:
            known = self._namespaces.get(namespace)
        if known is None:
            return digest_of
        by_bytes = known.by_bytes  # read without the lock: a dict lookup is atomic

        def digest(data: bytes) -> bytes:
            found = by_bytes.get(data)
            return digest_of(data) if found is None else found

        return digest

    def unknown(self, namespace: Namespace, parts: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
        """The parts of `parts` not known to be stored in `namespace`."""
        with self._lock:
            known = self._namespaces.get(namespace)
            if known is None:
                return dict(parts)
            return {d: data for d, data in parts.items() if d not in known.digests}

    def learn(self, namespace: Namespace, parts: Mapping[bytes, bytes]) -> None:
        if not parts:
            return
        with self._lock:
            known = self._namespaces.pop(namespace, None) or _Known()
            for d, data in parts.items():
                if d not in known.digests:
                    known.digests.add(d)
                    known.by_bytes[data] = d
                    known.size += len(data)
                    self._bytes += len(data)
            self._namespaces[namespace] = known
            while self._bytes > self.max_bytes and self._namespaces:
                _, dropped = self._namespaces.popitem(last=False)
                self._bytes -= dropped.size

    def forget_threads(self, thread_keys: Collection[bytes] | None = None) -> None:
        """Drop the entries of these threads (None: of every thread)."""
        with self._lock:
            for namespace in [n for n in self._namespaces if thread_keys is None or n[0] in thread_keys]:
                self._bytes -= self._namespaces.pop(namespace).size


@dataclass(slots=True)
class _Known:
    by_bytes: dict[bytes, bytes] = field(default_factory=dict)
    digests: set[bytes] = field(default_factory=set)
    size: int = 0
