"""Sizes of a run: the default, the smoke run (seconds, for CI) and the large additions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from benchmarks.graph import AgentShape, ConversationShape


@dataclass(frozen=True)
class Settings:
    name: str
    warmup: int = 1
    shape: AgentShape = field(default_factory=AgentShape)

    # 1. agent loop: threads x turns per sample
    agent_threads: int = 3
    agent_turns: int = 4
    agent_reps: int = 10

    # 2. per operation: calls per sample, samples; the conversation the fixtures replay
    op_calls: int = 20
    op_reps: int = 15
    op_turns: int = 3

    # 3. history length: checkpoints in the measured threads; rows in the whole table
    history_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    history_table_rows: int = 0
    """Filler rows of other threads, so the table holds about this many (0: none)."""
    history_calls: int = 20
    history_reps: int = 15

    # 4. storage
    storage_turns: int = 10
    document_bytes: int = 64_000
    document_steps: int = 50

    # 5. concurrency
    concurrent_runs: int = 32
    concurrent_turns: int = 2
    pool_size: int = 10
    concurrency_reps: int = 8

    # 6. long conversation (issue 10): one thread; the last turns timed; reads on it
    conversation_shape: ConversationShape = field(default_factory=ConversationShape)
    conversation_turns: int = 40
    conversation_timed_turns: int = 5
    conversation_repeats: int = 3
    """Conversations per contender for the turn times, each on fresh databases (the
    first one's are the ones measured and read)."""
    conversation_calls: int = 5
    """Calls per sample of `get_tuple` and `list(limit=10)` on the long thread."""
    conversation_reps: int = 10
    conversation_list_calls: int = 1
    """Calls per sample of `list` of the whole thread: every checkpoint with its messages,
    about 1 s a call on each saver today, hence fewer samples."""
    conversation_list_reps: int = 4

    profile_calls: int = 300


DEFAULT = Settings("default")

SMOKE = Settings(
    "smoke",
    warmup=0,
    shape=AgentShape(words=1, payload=50),
    agent_threads=1,
    agent_turns=1,
    agent_reps=1,
    op_calls=2,
    op_reps=1,
    op_turns=1,
    history_sizes=(10, 100),
    history_calls=2,
    history_reps=1,
    storage_turns=2,
    document_bytes=4_000,
    document_steps=3,
    concurrent_runs=4,
    concurrent_turns=1,
    pool_size=2,
    concurrency_reps=1,
    conversation_shape=ConversationShape(
        tool_calls=1, question_words=(3, 6), tool_chars=(40, 80), answer_chars=(40, 80)
    ),
    conversation_turns=4,
    conversation_timed_turns=2,
    conversation_repeats=2,
    conversation_calls=2,
    conversation_reps=1,
    conversation_list_calls=1,
    conversation_list_reps=1,
    profile_calls=5,
)


def large(settings: Settings) -> Settings:
    """`settings` plus the opt-in sizes: a 100k-checkpoint thread in a ~1M-row table."""
    return replace(
        settings,
        name=f"{settings.name}+large",
        history_sizes=(*settings.history_sizes, 100_000),
        history_table_rows=1_000_000,
    )
