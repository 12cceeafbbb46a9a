"""Structured outputs: a JSON value that validates against a JSON schema, grounded in text.

A real model asked for ``response_format: json_schema`` answers with JSON that matches
the schema and whose values come from what it was told. The sandbox does the same
deterministically, so that clients which parse the answer into a type (``parse``
helpers, the Agents SDK's ``output_type``, pydantic-ai, LangChain's
``with_structured_output``) get an object they can validate, with values a test can
predict. The *material* is the grounded text, most authoritative first: tool outputs
since the last user message, the last user text, file_search results, earlier user
turns.

Policy per schema node (documented in docs/sandbox.md, "Structured outputs"):

* ``$ref`` / ``allOf`` are resolved against the root's ``$defs``; ``anyOf``/``oneOf``
  (and ``type`` lists) take the first non-null branch when the material grounds it,
  else ``null`` when allowed, else the first branch; ``const`` is itself;
* a field whose name matches a key of a JSON object in the material (a tool output
  ``{"temperature": 21}``) or a ``Name: value`` line takes that value when it fits;
  or else a key holding every word of the name (``model`` takes ``Model number: NH-T3``;
  a data sheet's ``Specifications battery: ...`` fills ``battery``): the key from the
  most authoritative text, then the one with the fewest other words;
* ``enum``: the first option mentioned in the material, else the first option;
* ``number``/``integer``: the first number of the sentence best matching the field
  name, else the first number not yet used, else ``minimum`` or 0 (clamped to the
  bounds, rounded for integers);
* ``boolean``: true when the sentence best matching the field, or the next one (its
  answer), says yes/true/enabled;
* ``string``: a ``format`` (date-time, date, time, email, uri, uuid) takes the first
  match in the material or a fixed valid value; otherwise the sentence best matching
  the field name, else the next quoted or capitalised (not sentence-initial) phrase,
  else the first sentence; cut/padded to ``maxLength``/``minLength``;
* ``array``: enum items are every option mentioned (else the first); string items the
  sentences matching the field name (else one filled item); other items one filled
  item; then ``minItems``/``maxItems`` are honoured;
* ``object``: every property, in declaration order (optional ones only when grounded);
  ``additionalProperties`` never adds keys.

A nullable number or string takes a value only because it came next (the next unused
number or phrase) never: it is ``null`` unless the material names it, as a model
extracting from a document leaves out what the document lacks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z0-9]+")
_YES = frozenset({"yes", "true", "enable", "enabled", "on", "available", "open", "active"})
_STOP = frozenset(
    [
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "get", "give", "how",
        "i", "in", "is", "it", "me", "my", "of", "on", "or", "please", "set", "show", "tell",
        "that", "the", "this", "to", "use", "what", "when", "where", "which", "who", "why",
        "with", "you", "your",
    ]
)  # fmt: skip
_FORMATS = {
    "date-time": (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})",
                  "1970-01-01T00:00:00Z"),
    "date": (r"\d{4}-\d{2}-\d{2}", "1970-01-01"),
    "time": (r"\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})?", "00:00:00Z"),
    "email": (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "user@example.com"),
    "uri": (r"https?://[^\s\"'<>]+", "https://example.com"),
    "uuid": (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
             "00000000-0000-4000-8000-000000000000"),
}  # fmt: skip
_MAX_DEPTH = 6


def name_words(name: str) -> set[str]:
    """The words of a field or tool name (``cityName`` -> ``city``, ``name``)."""
    split = re.sub(r"([a-z])([A-Z])", r"\1 \2", name or "").replace("_", " ")
    out = set()
    for word in _WORD.findall(split.lower()):
        if word in _STOP:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s.strip()]


@dataclass
class Material:
    """The grounded text an answer may use, most authoritative first."""

    texts: list[str]
    facts: dict[str, Any] = field(default_factory=dict)  # lower-cased key -> value
    used_numbers: int = 0
    used_phrases: int = 0

    def __post_init__(self) -> None:
        self.sentences = [s for t in self.texts for s in sentences(t)]
        self.numbers = [n for s in self.sentences for n in _NUMBER.findall(s)]
        self.phrases = _quoted_or_capitalised(self.texts)
        self.fact_source: dict[str, int] = {}  # key -> the index of the text that gave it
        for index, text in enumerate(self.texts):
            self._collect_facts(text)
            for key in self.facts:
                self.fact_source.setdefault(key, index)

    def _collect_facts(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if data is not None:
            self._walk(data)
            return
        for line in text.splitlines():
            label, sep, value = line.partition(":")
            if sep and value.strip() and 0 < len(label.split()) <= 4:
                self.facts.setdefault(_key(label), value.strip().rstrip("."))

    def _walk(self, data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                self.facts.setdefault(_key(str(key)), value)
                self._walk(value)
        elif isinstance(data, list):
            for value in data:
                self._walk(value)

    @property
    def blob(self) -> str:
        return "\n".join(self.texts)

    def best_sentences(self, name: str) -> list[str]:
        """Sentences mentioning the name's words, most words first (ties: earlier)."""
        wanted = name_words(name)
        if not wanted:
            return []
        scored = []
        for i, sentence in enumerate(self.sentences):
            score = len(wanted & name_words(sentence))
            if score:
                scored.append((-score, i, sentence))
        return [s for _, _, s in sorted(scored)]

    def next_number(self) -> str | None:
        if self.used_numbers < len(self.numbers):
            self.used_numbers += 1
            return self.numbers[self.used_numbers - 1]
        return None

    def next_phrase(self) -> str | None:
        if self.used_phrases < len(self.phrases):
            self.used_phrases += 1
            return self.phrases[self.used_phrases - 1]
        return None


def _key(label: str) -> str:
    return " ".join(sorted(name_words(label)))


_OPENERS = frozenset(
    [
        "a", "an", "the", "this", "that", "these", "those", "it", "its", "i", "we", "you",
        "he", "she", "they", "my", "our", "your", "what", "which", "who", "whom", "whose",
        "when", "where", "why", "how", "is", "are", "was", "were", "do", "does", "did", "can",
        "could", "would", "should", "will", "please", "give", "tell", "show", "list", "find",
        "get", "make", "there", "here", "if", "in", "on", "at", "for", "and", "but", "or",
        "so", "yes", "no", "hi", "hello", "thanks",
    ]
)  # fmt: skip


def _quoted_or_capitalised(texts: list[str]) -> list[str]:
    """Quoted phrases, then capitalised word groups (a sentence's first word only when it
    is not an ordinary opener such as ``What`` or ``The``), in the order written."""
    found: list[str] = []
    for text in texts:
        found += [a or b for a, b in re.findall(r"\"([^\"\n]+)\"|'([^'\n]+)'", text)]
    for text in texts:
        for match in re.finditer(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*", text):
            words = match.group(0).split()
            before = text[: match.start()].rstrip()
            if (not before or before[-1] in ".!?\n") and words[0].lower() in _OPENERS:
                words = words[1:]
            if words:
                found.append(" ".join(words))
    return found


class _Filler:
    def __init__(self, root: dict[str, Any], material: Material) -> None:
        self.root = root
        self.material = material

    def resolve(self, schema: Any) -> dict[str, Any]:
        """``$ref`` and ``allOf`` folded into one schema node."""
        if not isinstance(schema, dict):
            return {}
        seen = 0
        while "$ref" in schema and seen < 32:
            target: Any = self.root
            for part in str(schema["$ref"]).lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, dict) else {}), **rest}
            seen += 1
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                node = self.resolve(part)
                props = {**(merged.get("properties") or {}), **(node.get("properties") or {})}
                merged = {**node, **merged, "properties": props} if props else {**node, **merged}
                merged["required"] = list(
                    dict.fromkeys((merged.get("required") or []) + (node.get("required") or []))
                )
            schema = merged
        return schema

    def fill(self, schema: Any, name: str, depth: int = 0) -> tuple[Any, bool]:
        """A value for ``schema`` and whether the material grounded it."""
        node = self.resolve(schema)
        if "const" in node:
            return node["const"], True
        branches = node.get("anyOf") or node.get("oneOf")
        kind = node.get("type")
        if branches is None and isinstance(kind, list):
            branches = [{**node, "type": k} for k in kind]
        if branches:
            return self._choose(branches, name, depth)
        fact = self._fact(node, name)
        if fact is not None:
            return fact, True
        if "enum" in node:
            return self._enum(node["enum"])
        return self._typed(node, name, depth)

    def _typed(self, node: dict[str, Any], name: str, depth: int) -> tuple[Any, bool]:
        kind = node.get("type") or ("object" if "properties" in node else "string")
        if kind == "object":
            return self._object(node, depth)
        if kind == "array":
            return self._array(node, name, depth)
        if kind in ("number", "integer"):
            return self._number(node, name, kind)
        if kind == "boolean":
            return self._boolean(name)
        if kind == "string":
            return self._string(node, name)
        return None, False

    def _choose(self, branches: list[Any], name: str, depth: int) -> tuple[Any, bool]:
        nulls = [b for b in branches if self.resolve(b).get("type") == "null"]
        others = [b for b in branches if self.resolve(b).get("type") != "null"]
        if not others:
            return None, False
        if depth >= _MAX_DEPTH and nulls:
            return None, False
        taken = (self.material.used_numbers, self.material.used_phrases)
        value, grounded = self.fill(others[0], name, depth)
        scalar = self.resolve(others[0]).get("type") in ("number", "integer", "string")
        merely_next = scalar and taken != (self.material.used_numbers, self.material.used_phrases)
        if nulls and (not grounded or merely_next):
            if merely_next:  # give back what it took: the next field may be named by it
                self.material.used_numbers, self.material.used_phrases = taken
            return None, False
        return value, grounded

    def _fact(self, node: dict[str, Any], name: str) -> Any:
        """The material's value for a key matching ``name``, when it fits ``node``."""
        key = _key(name)
        if not key:
            return None
        wanted = set(key.split())
        source = self.material.fact_source
        holding = [(source[k], len(k.split()), k) for k in source if wanted <= set(k.split())]
        if not holding:
            return None
        value = self.material.facts[min(holding)[2]]
        kind = node.get("type")
        if "enum" in node:
            return value if value in node["enum"] else None
        if kind == "string" and isinstance(value, str) and "format" not in node:
            return _fit_length(node, value)
        if kind in ("number", "integer") and not isinstance(value, bool):
            number = value if isinstance(value, (int, float)) else _first_number(str(value))
            return None if number is None else _bounded(node, float(number), kind)
        if kind == "boolean" and isinstance(value, bool):
            return value
        return None

    def _boolean(self, name: str) -> tuple[bool, bool]:
        """True when the sentence naming the field, or the next one (its answer), says
        yes, true, enabled..."""
        best = self.material.best_sentences(name)
        if not best:
            return False, False
        at = self.material.sentences.index(best[0])
        said = name_words(" ".join(self.material.sentences[at : at + 2]))
        return bool(said & _YES), True

    def _enum(self, options: list[Any]) -> tuple[Any, bool]:
        low = self.material.blob.lower()
        for option in options:
            if re.search(rf"(?<!\w){re.escape(str(option).lower())}(?!\w)", low):
                return option, True
        return (options[0] if options else None), False

    def _number(self, node: dict[str, Any], name: str, kind: str) -> tuple[Any, bool]:
        for sentence in self.material.best_sentences(name):
            number = _first_number(sentence)
            if number is not None:
                return _bounded(node, number, kind), True
        raw = self.material.next_number()
        if raw is not None:
            return _bounded(node, float(raw.replace(",", "")), kind), True
        return _bounded(node, float(node.get("minimum", 0)), kind), False

    def _string(self, node: dict[str, Any], name: str) -> tuple[Any, bool]:
        fmt = node.get("format")
        if fmt in _FORMATS:
            pattern, default = _FORMATS[fmt]
            found = re.search(pattern, self.material.blob)
            return (found.group(0), True) if found else (default, False)
        best = self.material.best_sentences(name)
        if best:
            return _fit_length(node, best[0]), True
        phrase = self.material.next_phrase()
        if phrase is not None:
            return _fit_length(node, phrase), True
        first = self.material.sentences[0] if self.material.sentences else ""
        return _fit_length(node, first), False

    def _array(self, node: dict[str, Any], name: str, depth: int) -> tuple[Any, bool]:
        items = self.resolve(node.get("items") or {})
        values: list[Any] = []
        grounded = False
        if "enum" in items:
            blob = self.material.blob.lower()
            values = [o for o in items["enum"] if str(o).lower() in blob]
            grounded = bool(values)
        elif items.get("type") == "string" and "format" not in items:
            values = [_fit_length(items, s) for s in self.material.best_sentences(name)[:3]]
            grounded = bool(values)
        if not values and depth < _MAX_DEPTH:
            value, grounded = self.fill(items, name, depth + 1)
            values = [value]
        low, high = int(node.get("minItems", 0)), node.get("maxItems")
        while len(values) < low:
            values.append(values[-1] if values else self.fill(items, name, depth + 1)[0])
        if high is not None:
            values = values[: int(high)]
        return values, grounded

    def _object(self, node: dict[str, Any], depth: int) -> tuple[Any, bool]:
        props = node.get("properties") or {}
        required = set(node.get("required") or [])
        out: dict[str, Any] = {}
        grounded = False
        for prop, sub in props.items():
            if depth >= _MAX_DEPTH and prop not in required:
                continue
            value, found = self.fill(sub, prop, depth + 1)
            grounded = grounded or found
            if prop in required or found:
                out[prop] = value
        return out, grounded


def _first_number(text: str) -> float | None:
    found = _NUMBER.search(text)
    return float(found.group(0).replace(",", "")) if found else None


def _bounded(node: dict[str, Any], value: float, kind: str) -> int | float:
    if "minimum" in node:
        value = max(value, float(node["minimum"]))
    if "maximum" in node:
        value = min(value, float(node["maximum"]))
    if "exclusiveMinimum" in node and value <= float(node["exclusiveMinimum"]):
        value = float(node["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in node and value >= float(node["exclusiveMaximum"]):
        value = float(node["exclusiveMaximum"]) - 1
    if kind == "integer" or value.is_integer():
        return round(value)
    return value


def _fit_length(node: dict[str, Any], text: str) -> str:
    if "maxLength" in node:
        text = text[: int(node["maxLength"])]
    if "minLength" in node and len(text) < int(node["minLength"]):
        text = text + "x" * (int(node["minLength"]) - len(text))
    return text


def fill(schema: dict[str, Any], material: Material) -> Any:
    """A value for ``schema`` grounded in ``material`` (see the module's policy)."""
    return _Filler(schema, material).fill(schema, "", 0)[0]


def fill_property(root: dict[str, Any], schema: Any, name: str, material: Material) -> Any:
    """A value for one property ``name`` of ``root`` (its ``$defs`` resolve refs)."""
    return _Filler(root, material).fill(schema, name, 1)[0]
