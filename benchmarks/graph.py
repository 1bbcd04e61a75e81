"""The graphs the benchmark runs, and a recorder of what LangGraph asks a saver to do.

`agent_graph` is an agent <-> tool loop over a growing message list, with no model: the
"agent" calls a `lookup` tool once per word of the latest question, then answers. Every
tool result carries a payload of a few hundred characters, so the state grows the way a
real conversation does. Message ids are deterministic, so the run without a checkpointer
(which has to pass the whole history back in) builds exactly the same state.

`document_graph` holds one large value that never changes (a document) beside a counter
that changes every step: the storage workload's second case.

`conversation_graph` is the agent loop of the long-conversation workload: the same
agent <-> tool shape, with text that reads (and compresses) like prose instead of the
short tokens above: questions, tool results and answers of varying length, written by
`Writer` from a seeded generator over a vocabulary of thousands of words.
"""

from __future__ import annotations

import copy
import itertools
import operator
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    tool_calls: Annotated[int, operator.add]


@dataclass(frozen=True)
class AgentShape:
    """How big one conversation is."""

    words: int = 3
    """Tool calls per turn (each is an agent step and a tool step)."""
    payload: int = 300
    """Characters of each tool result."""


def _latest_question(messages: Sequence[AnyMessage]) -> tuple[int, HumanMessage]:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, HumanMessage):
            return i, message
    raise ValueError("no question in the conversation")


def _agent(state: AgentState) -> dict[str, Any]:
    position, question = _latest_question(state["messages"])
    words = str(question.content).split()
    done = sum(isinstance(m, ToolMessage) for m in state["messages"][position:])
    turn = question.id
    if done < len(words):
        call = {"id": f"{turn}-call-{done}", "name": "lookup", "args": {"word": words[done]}}
        return {"messages": [AIMessage(content="", tool_calls=[call], id=f"{turn}-ai-{done}")]}
    found = [str(m.content)[:12] for m in state["messages"][position:] if isinstance(m, ToolMessage)]
    return {"messages": [AIMessage(content="answer: " + ", ".join(found), id=f"{turn}-ai-final")]}


def _route(state: AgentState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


_VOCABULARY = ["".join(random.Random(f"word-{i}").choices(string.ascii_lowercase, k=3 + i % 8)) for i in range(400)]


def prose(seed: str, size: int) -> str:
    """`size` characters of deterministic pseudo-text: words drawn at random from a
    vocabulary, so it compresses about as well as real text (2-3x), not 100x like a
    repeated sentence (PostgreSQL compresses large values, which would flatter it)."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_VOCABULARY)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


class _Tool:
    def __init__(self, payload: int) -> None:
        self.payload = payload

    def __call__(self, state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        call = last.tool_calls[0]
        word = str(call["args"]["word"])
        text = f"{word.upper()}: {prose(str(call['id']), self.payload)}"[: self.payload]
        return {
            "messages": [ToolMessage(content=text, tool_call_id=call["id"], id=f"tool-{call['id']}")],
            "tool_calls": 1,
        }


def agent_graph(shape: AgentShape) -> StateGraph[Any]:
    builder = StateGraph(AgentState)
    builder.add_node("agent", _agent)
    builder.add_node("tools", _Tool(shape.payload))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", _route, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder


def question(thread: str, turn: int, shape: AgentShape) -> HumanMessage:
    words = [WORDS[(turn + i) % len(WORDS)] for i in range(shape.words)]
    return HumanMessage(content=" ".join(words), id=f"{thread}-q{turn}")


def checkpoints_per_turn(shape: AgentShape) -> int:
    """Checkpoints LangGraph writes for one turn: the input (step -1), the start node
    (step 0), then the agent and tool steps (the agent runs once more than the tool)."""
    return 2 + 2 * shape.words + 1


# --- one large value that never changes ----------------------------------------------


class DocumentState(TypedDict):
    document: str
    step: int
    notes: Annotated[list[str], operator.add]


def document_graph(steps: int) -> StateGraph[Any]:
    """`steps` steps that each bump `step` and append a short note; `document` is set by
    the input and never written again."""
    builder = StateGraph(DocumentState)
    builder.add_node("work", lambda s: {"step": s["step"] + 1, "notes": [f"note {s['step']}"]})
    builder.add_edge(START, "work")
    builder.add_conditional_edges("work", lambda s: "work" if s["step"] < steps else END)
    return builder


def document(size: int) -> str:
    return prose("document", size)


# --- a long conversation of realistic text ----------------------------------------------

_CONSONANTS = ("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "ch", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "io")
_FUNCTION_WORDS = (
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "on", "was", "by", "this",
    "be", "are", "or", "from", "at", "which", "not", "an", "but", "they", "have", "we", "its", "their",
)  # fmt: skip


class Writer:
    """Pseudo-prose from a seeded generator: a vocabulary of `vocabulary` made-up words
    (one to four syllables) drawn with Zipf frequencies, mixed with common English
    function words about as often as English uses them; sentences of 4 to 28 words with
    the odd comma and number, in paragraphs. Nothing repeats beyond what text repeats:
    zlib compresses it about 2-3x, like English, where a repeated sentence would compress
    100x (and PostgreSQL compresses large values, which would flatter whoever stores more)."""

    def __init__(self, vocabulary: int = 5_000, seed: str = "conversation-vocabulary") -> None:
        rng = random.Random(seed)
        seen: set[str] = set()
        words: list[str] = []
        while len(words) < vocabulary:
            syllables = rng.choices((1, 2, 3, 4), weights=(3, 5, 3, 1))[0]
            word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
            word += rng.choice(_CONSONANTS) if rng.random() < 0.4 else ""
            if word not in seen and word not in _FUNCTION_WORDS:
                seen.add(word)
                words.append(word)
        self.words = words
        self.weights = list(itertools.accumulate(1.0 / (rank + 3) for rank in range(len(words))))
        self.function_weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(_FUNCTION_WORDS))))

    def word(self, rng: random.Random) -> str:
        if rng.random() < 0.35:
            return rng.choices(_FUNCTION_WORDS, cum_weights=self.function_weights)[0]
        return rng.choices(self.words, cum_weights=self.weights)[0]

    def sentence(self, rng: random.Random, words: int | None = None) -> str:
        n = words if words is not None else rng.randint(4, 28)
        out = [self.word(rng) for _ in range(n)]
        if rng.random() < 0.15:
            out[rng.randrange(n)] = str(rng.randint(2, 9_999))
        if n > 6 and rng.random() < 0.4:
            i = rng.randrange(2, n - 2)
            out[i] += ","
        out[0] = out[0].capitalize()
        return " ".join(out) + rng.choices((".", "?", "!", ":"), weights=(85, 6, 3, 6))[0]

    def text(self, rng: random.Random, size: int) -> str:
        """About `size` characters (whole sentences, the last one cut at `size`)."""
        parts: list[str] = []
        length, in_paragraph = 0, 0
        while length < size:
            sentence = self.sentence(rng)
            separator = "" if not parts else ("\n\n" if in_paragraph >= rng.randint(3, 6) else " ")
            in_paragraph = 0 if separator == "\n\n" else in_paragraph + 1
            parts.append(separator + sentence)
            length += len(separator) + len(sentence)
        return "".join(parts)[:size]


WRITER = Writer()


@dataclass(frozen=True)
class ConversationShape:
    """How one turn of the long conversation looks: `tool_calls` searches, each an agent
    step and a tool step, then an answer; lengths in characters, drawn uniformly."""

    tool_calls: int = 3
    question_words: tuple[int, int] = (8, 24)
    tool_chars: tuple[int, int] = (200, 650)
    answer_chars: tuple[int, int] = (150, 600)


class _ConversationAgent:
    def __init__(self, shape: ConversationShape) -> None:
        self.shape = shape

    def __call__(self, state: AgentState) -> dict[str, Any]:
        position, asked = _latest_question(state["messages"])
        done = sum(isinstance(m, ToolMessage) for m in state["messages"][position:])
        turn = asked.id
        if done < self.shape.tool_calls:
            rng = random.Random(f"{turn}-call-{done}")
            words = [w.strip(",.?!:") for w in str(asked.content).split()]
            query = " ".join(rng.sample(words, k=min(3, len(words))))
            call = {"id": f"{turn}-call-{done}", "name": "search", "args": {"query": query}}
            return {"messages": [AIMessage(content="", tool_calls=[call], id=f"{turn}-ai-{done}")]}
        rng = random.Random(f"{turn}-answer")
        answer = WRITER.text(rng, rng.randint(*self.shape.answer_chars))
        return {"messages": [AIMessage(content=answer, id=f"{turn}-ai-final")]}


class _Search:
    def __init__(self, shape: ConversationShape) -> None:
        self.shape = shape

    def __call__(self, state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        call = last.tool_calls[0]
        rng = random.Random(str(call["id"]))
        text = WRITER.text(rng, rng.randint(*self.shape.tool_chars))
        return {
            "messages": [ToolMessage(content=text, tool_call_id=call["id"], id=f"tool-{call['id']}")],
            "tool_calls": 1,
        }


def conversation_graph(shape: ConversationShape) -> StateGraph[Any]:
    """The agent loop with prose: every text depends only on the turn and call number,
    so every saver (and every run) gets exactly the same conversation."""
    builder = StateGraph(AgentState)
    builder.add_node("agent", _ConversationAgent(shape))
    builder.add_node("tools", _Search(shape))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", _route, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder


def conversation_question(turn: int, shape: ConversationShape) -> HumanMessage:
    rng = random.Random(f"question-{turn}")
    return HumanMessage(content=WRITER.sentence(rng, rng.randint(*shape.question_words)), id=f"turn{turn}-q")


def conversation_checkpoints_per_turn(shape: ConversationShape) -> int:
    """As `checkpoints_per_turn`: input, start, then agent/tool steps and the answer."""
    return 2 + 2 * shape.tool_calls + 1


# --- recording what a saver is asked -------------------------------------------------


@dataclass
class Recorded:
    """The calls LangGraph made on a saver during one conversation, deep-copied."""

    puts: list[tuple[RunnableConfig, Checkpoint, CheckpointMetadata, ChannelVersions]] = field(default_factory=list)
    writes: list[tuple[RunnableConfig, list[tuple[str, Any]], str, str]] = field(default_factory=list)
    order: list[tuple[str, int]] = field(default_factory=list)
    """("put" | "writes", index) in call order."""


class RecordingSaver(InMemorySaver):
    """An `InMemorySaver` that keeps a copy of every `put` and `put_writes`."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded = Recorded()

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        call = copy.deepcopy((config, checkpoint, metadata, new_versions))
        self.recorded.order.append(("put", len(self.recorded.puts)))
        self.recorded.puts.append(call)
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.recorded.order.append(("writes", len(self.recorded.writes)))
        self.recorded.writes.append(copy.deepcopy((config, list(writes), task_id, task_path)))
        super().put_writes(config, writes, task_id, task_path)


def record_conversation(shape: AgentShape, turns: int, thread: str = "recorded") -> Recorded:
    """Run one conversation of `turns` turns (durability "sync", so calls come in order)
    and return what the saver was asked to store."""
    saver = RecordingSaver()
    graph = agent_graph(shape).compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for turn in range(turns):
        graph.invoke({"messages": [question(thread, turn, shape)], "tool_calls": 0}, config, durability="sync")
    return saver.recorded
