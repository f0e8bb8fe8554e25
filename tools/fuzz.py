#!/usr/bin/env python3
"""Fuzz netspec's front end: mutated zoo specs and Caffe files, and random bytes, go through the
same entry points as the CLI (load_graph + analyze); anything but a NetspecError escaping (a
MemoryError under the run's address-space cap included), or an input running past its CPU-time
bound, is a finding, kept with its traceback in the crashes folder.

    python tools/fuzz.py --seconds 600 --seed 1 --crashes fuzz-crashes/

tests/test_fuzz.py drives the same mutations with hypothesis for a bounded number of examples.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent

# Lexical pieces of both .net and prototxt files; mutations work on these so that most mutants
# still lex and reach the later stages.
_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?'
    r"|[A-Za-z_][A-Za-z0-9_.]*|\*\*|//|[=!<>]=|\s+|."
)
_NUMBER = re.compile(r"[0-9]")
_IDENTIFIER = re.compile(r"[A-Za-z_]")

EXTREME_NUMBERS = (
    "0", "-1", "1", "2", "-0", "65535", "2147483648", "9223372036854775807", "4611686018427387905",
    "99999999999999999999999999", "1e308", "1e-320", "0.0", "-1e9", "3.5", "10**100", "2**62",
    "1000000", "[]", "[0]", "[N, 3, 0, 0]", "[1, 100000, 100000, 100000]",
    # Whole floats past 2**62 (and past 2**63) where an integer is expected (issue 13).
    "1e19", "9.3e18", "4.7e18", "1e300", "-1e19",
)  # fmt: skip
NOISE_IDENTIFIERS = (
    "in", "N", "bottom", "top", "repeat", "template", "include", "let", "if", "else", "for", "as",
    "true", "false", "MAX", "SUM", "Concat", "Eltwise", "Convolution", "InnerProduct", "Softmax",
    "Pooling", "Reshape", "Slice", "Crop", "input", "input_dim", "layer", "layers", "type", "axis",
    "group", "kernel_size", "stride", "pad", "dilation", "num_output", "dim", "shape", "phase",
)  # fmt: skip


@dataclass(frozen=True)
class Seed:
    """A file the mutations start from: its name (for the suffix and includes) and its text."""

    name: str
    text: str

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix


def corpus(root: Path = ROOT) -> list[Seed]:
    """Every zoo spec and every Caffe test file."""
    files = sorted((root / "zoo").glob("*.net")) + sorted((root / "tests/data/caffe").glob("*.prototxt"))
    return [Seed(path.name, path.read_text(encoding="utf-8")) for path in files]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _pick(rng: random.Random, items: list[str], accept: Callable[[str], bool]) -> int | None:
    indices = [i for i, item in enumerate(items) if accept(item)]
    return rng.choice(indices) if indices else None


def delete_token(text: str, rng: random.Random) -> str:
    tokens = _tokens(text)
    if tokens:
        del tokens[rng.randrange(len(tokens))]
    return "".join(tokens)


def duplicate_token(text: str, rng: random.Random) -> str:
    tokens = _tokens(text)
    if tokens:
        i = rng.randrange(len(tokens))
        tokens.insert(i, tokens[i])
    return "".join(tokens)


def swap_tokens(text: str, rng: random.Random) -> str:
    tokens = _tokens(text)
    if len(tokens) > 1:
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(tokens)


def delete_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    if lines:
        del lines[rng.randrange(len(lines))]
    return "".join(lines)


def duplicate_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    if lines:
        i = rng.randrange(len(lines))
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "".join(lines)


def swap_lines(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    if len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def extreme_number(text: str, rng: random.Random) -> str:
    tokens = _tokens(text)
    i = _pick(rng, tokens, lambda t: bool(_NUMBER.match(t)))
    if i is not None:
        tokens[i] = rng.choice(EXTREME_NUMBERS)
    return "".join(tokens)


def replace_identifier(text: str, rng: random.Random) -> str:
    tokens = _tokens(text)
    i = _pick(rng, tokens, lambda t: bool(_IDENTIFIER.match(t)))
    if i is not None:
        words = [t for t in tokens if _IDENTIFIER.match(t)]
        tokens[i] = rng.choice(words) if rng.random() < 0.5 else rng.choice(NOISE_IDENTIFIERS)
    return "".join(tokens)


def insert_bytes(text: str, rng: random.Random) -> str:
    position = rng.randrange(len(text) + 1)
    noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    # Bytes that are not UTF-8 ride along as lone surrogates until mutant() encodes the text.
    return text[:position] + noise.decode("utf-8", errors="surrogateescape") + text[position:]


def nest_deeply(text: str, rng: random.Random) -> str:
    """Deep brackets, blocks or parentheses at a random point (recursion limits)."""
    depth = rng.choice((50, 1_000, 20_000))
    opener, closer = rng.choice((("[", "]"), ("(", ")"), ("{", "}"), ("a { ", "} ")))
    position = rng.randrange(len(text) + 1)
    return text[:position] + opener * depth + closer * depth + text[position:]


def long_run(text: str, rng: random.Random) -> str:
    """A very long token or line at a random point (lexer regexes must stay linear)."""
    piece = rng.choice(("a", "1", "{a", "x{", "a ", "1.", '"', "#", "[", "-", "a.", " "))
    position = rng.randrange(len(text) + 1)
    return text[:position] + piece * rng.choice((1_000, 50_000)) + text[position:]


def constant_chain(text: str, rng: random.Random) -> str:
    """Constants that each double the last (values must stay capped in size and depth)."""
    step = rng.choice(("{0} + {0}", "[{0}, {0}]", "[{0}]", "str({0}) + str({0})"))
    start = rng.choice(("range(1000)", '"ab"', "[1, 2]", "1"))
    chain = f"let zz0 = {start}\n" + "".join(
        f"let zz{i + 1} = {step.format(f'zz{i}')}\n" for i in range(rng.choice((10, 40, 300)))
    )
    lines = text.splitlines(keepends=True)
    position = rng.randrange(len(lines) + 1)
    return "".join([*lines[:position], chain, *lines[position:]])


def duplicate_top(text: str, rng: random.Random) -> str:
    """The same name twice in one layer's tops: a Caffe 'top:' field repeated, or a .net
    'top: [t, t]' put into a block."""
    tops = [m for m in re.finditer(r"\btop:\s*(\"[^\"\n]*\"|\[[^\]\n]*\]|[\w.]+)", text)]
    if tops and rng.random() < 0.7:
        found = rng.choice(tops)
        return text[: found.end()] + " " + found.group(0) + text[found.end() :]
    braces = [m.end() for m in re.finditer(r"\{", text)]
    if not braces:
        return text
    position = rng.choice(braces)
    return text[:position] + " top: [zt, zt] " + text[position:]


# Terminal control: clear screen, retitle (OSC), bell, a bidirectional override, C1 CSI.
CONTROL_PIECES = ("\x1b[2J", "\x1b]0;title\x07", "\u202e", "\x9b31m", "\x08\x08", "\r")


def control_characters(text: str, rng: random.Random) -> str:
    """Control characters inside a string or a name, or loose (diagnostics must escape them)."""
    piece = rng.choice(CONTROL_PIECES)
    strings = [m for m in re.finditer(r'"[^"\n]*"', text)]
    if strings and rng.random() < 0.6:
        found = rng.choice(strings)
        return text[: found.start() + 1] + piece + text[found.start() + 1 :]
    position = rng.randrange(len(text) + 1)
    return text[:position] + rng.choice((piece, f'"{piece}"')) + text[position:]


def misplaced_brace(text: str, rng: random.Random) -> str:
    """An 'else' after no 'if', or a '{' glued to a name and never closed: the diagnostics
    must point at them, not at the file's end."""
    lines = text.splitlines(keepends=True)
    position = rng.randrange(len(lines) + 1)
    piece = rng.choice(("else {\n", "} else {\n", "ReLU zz{i {}\n", "ReLU zz{1 {\n", "elif 1 {\n"))
    return "".join([*lines[:position], piece, *lines[position:]])


def line_ends(text: str, rng: random.Random) -> str:
    """A byte order mark, Windows or old Mac line ends."""
    choice = rng.randrange(3)
    if choice == 0:
        return "\ufeff" + text
    return text.replace("\n", "\r\n" if choice == 1 else "\r")


COSTLY = (
    "repeat 100000 {{ let zz = range(1000000) }}",
    "let zz = range(1000000)\nrepeat 100000 {{ if zz == zz {{ }} }}",
    "let zz = range(1000000)\nrepeat 50000 as zi {{ Reshape zr{{zi}} {{ bottom: {tensor}  shape: zz }} }}",
    'let zs = "{long}"\nrepeat 1000 as zi {{ ReLU zr{{zi}}{{zs}} {{ bottom: {tensor} }} }}',
    "let zz = [" + "1, " * 20_000 + "1]\nrepeat 10000 {{ let zy = zz + zz }}",
)


def costly_expression(text: str, rng: random.Random) -> str:
    """Loops over long lists, comparisons and names that stay under every cap one by one: the
    evaluation budget must stop them within the CPU-time bound."""
    tensor = next(iter(re.findall(r"\binput\s+([\w.]+)", text)), "data")
    piece = rng.choice(COSTLY).format(tensor=tensor, long="a" * 5000)
    lines = text.splitlines(keepends=True)
    position = rng.randrange(len(lines) + 1)
    return "".join([*lines[:position], piece + "\n", *lines[position:]])


MUTATIONS: tuple[Callable[[str, random.Random], str], ...] = (
    delete_token,
    duplicate_token,
    swap_tokens,
    delete_line,
    duplicate_line,
    swap_lines,
    extreme_number,
    extreme_number,
    replace_identifier,
    insert_bytes,
    nest_deeply,
    long_run,
    constant_chain,
    duplicate_top,
    control_characters,
    misplaced_brace,
    line_ends,
    costly_expression,
)


def mutant(seed: Seed, rng: random.Random, rounds: int) -> bytes:
    """``seed`` after ``rounds`` random mutations, as the bytes of a file."""
    text = seed.text
    for _ in range(rounds):
        text = rng.choice(MUTATIONS)(text, rng)
    return text.encode("utf-8", errors="surrogateescape")


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))


class InputTimeout(Exception):
    """An input ran past the time bound."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise InputTimeout in the block once it has used ``seconds`` of CPU time (POSIX main
    thread only). CPU time, not wall time: the bound measures the input's work, not how busy
    the machine is."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise InputTimeout(f"the input took more than {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


class Workspace:
    """A temporary folder holding a copy of zoo/lib, so that mutated zoo specs find their includes."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="netspec-fuzz-"))
        self._fill()

    def _fill(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ROOT / "zoo" / "lib", self.folder / "lib", dirs_exist_ok=True)

    def write(self, data: bytes, suffix: str) -> Path:
        if not (self.folder / "lib").is_dir():  # a long run outlives cleaners of /tmp
            self._fill()
        path = self.folder / f"input{suffix}"
        path.write_bytes(data)
        return path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# Inputs whose net stores at most this many weights are also compiled and checked: the crashes
# that 'netspec check' passes (a tensor name twice in the ONNX graph) show only there.
COMPILE_MAX_WEIGHTS = 2_000_000


def front_end(path: Path) -> None:
    """What ``netspec check`` does with a file, then, for a small net, what ``netspec compile``
    does (the ONNX checker included), raising whatever escapes."""
    analysis = bind(load_graph(path))
    if analysis.counts.totals.params + analysis.counts.totals.buffers > COMPILE_MAX_WEIGHTS:
        return
    from netspec.compiler import compile_graph
    from netspec.export.onnx import check_model

    check_model(compile_graph(analysis))


# Characters a rendered diagnostic may hold besides printable ones.
_ALLOWED_CONTROLS = {"\n"}


def unsafe_rendering(exc: NetspecError) -> str | None:
    """A finding when a diagnostic's rendering holds a raw control character (a spec could
    then clear or retitle the user's terminal)."""
    rendered = exc.render()
    bad = sorted({c for c in rendered if not c.isprintable() and c not in _ALLOWED_CONTROLS})
    if bad:
        return f"a diagnostic shows raw control characters {bad!r}:\n{rendered[:2000]!r}"
    return None


def run_input(path: Path, timeout: float, check: Callable[[Path], object] | None = None) -> str | None:
    """None when the input gives a result or a NetspecError that renders safely; otherwise
    the finding's traceback. ``check`` is what is run on the file (default: front_end)."""
    try:
        with time_bound(timeout):
            (check or front_end)(path)
    except NetspecError as exc:
        return unsafe_rendering(exc)
    except Exception:
        return traceback.format_exc()
    return None


# ---------------------------------------------------------------- weight files

# The net weight files are fuzzed against: small, with weights and biases.
WEIGHTS_SPEC = "input data: [N, 3, 8, 8]\nConvolution c { num_output: 2  kernel_size: 3 }\n" + (
    "InnerProduct fc { num_output: 3 }\n"
)


def weight_seeds(rng: random.Random) -> dict[str, bytes]:
    """A valid .npz and .safetensors for WEIGHTS_SPEC (random values), by suffix."""
    import io

    import numpy as np
    from safetensors.numpy import save

    from netspec.diagnostics import SourceFile
    from netspec.elaborate import elaborate

    graph = elaborate(SourceFile("weights.net", WEIGHTS_SPEC))
    arrays = {
        name: np.asarray(
            [rng.gauss(0, 1) for _ in range(int(np.prod(array.spec.shape)))], np.float32
        ).reshape(array.spec.shape)
        for name, array in bind(graph).expected_arrays.items()
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return {".npz": buffer.getvalue(), ".safetensors": save(arrays)}


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flipped, inserted, cut or duplicated bytes; or a zip polyglot / odd member / NaN patch."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        position = rng.randrange(len(buffer) + 1)
        if choice == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
        elif choice == 1:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice == 2:
            del buffer[position : position + rng.randint(1, 64)]
        elif choice == 3:
            buffer[:0] = rng.choice((b"\x89PNG\r\n\x1a\n", b"GIF89a", b"PK\x03\x04", b"\x93NUMPY"))
        elif choice == 4:
            # A float32 NaN or infinity, or a huge length, written over four bytes.
            buffer[position : position + 4] = rng.choice(
                (b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\xff\xff\xff\x7f")
            )
        else:
            chunk = buffer[position : position + rng.randint(1, 256)]
            buffer[position:position] = chunk
    return bytes(buffer)


def load_weights_check(path: Path) -> None:
    """What ``netspec compile --weights FILE`` does with a weights file for WEIGHTS_SPEC."""
    import warnings

    from netspec.diagnostics import SourceFile
    from netspec.elaborate import elaborate
    from netspec.weightfile import load_weights

    graph = elaborate(SourceFile("weights.net", WEIGHTS_SPEC))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning leaking to the user is a finding
        load_weights(str(path), bind(graph))


@contextmanager
def memory_cap(gib: float) -> Iterator[None]:
    """Cap this process's address space in the block, restoring the previous cap afterwards
    (POSIX only; no cap where unsupported, or when ``gib`` is 0)."""
    try:
        import resource
    except ImportError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = int(gib * 2**30)
    if cap <= 0:
        yield
        return
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="CPU-time bound per input in s (default 20)"
    )
    parser.add_argument(
        "--crashes", type=Path, default=Path("fuzz-crashes"), help="folder for the inputs that fail"
    )
    parser.add_argument(
        "--memory-gib",
        type=float,
        default=4.0,
        help="address-space cap of this process in GiB (default 4): an input that would take more "
        "raises MemoryError, a finding, instead of bringing the machine down",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    seeds = corpus()
    weights = weight_seeds(rng)
    workspace = Workspace()
    counts = {"inputs": 0, "findings": 0}
    started = time.monotonic()
    try:
        with memory_cap(args.memory_gib):
            while time.monotonic() - started < args.seconds:  # Ctrl-C stops early, with the summary
                check: Callable[[Path], object] | None = None
                draw = rng.random()
                if draw < 0.05:
                    seed_name, suffix, data = "random", rng.choice((".net", ".prototxt")), random_bytes(rng)
                elif draw < 0.15:
                    suffix = rng.choice(tuple(weights))
                    seed_name, data, check = (
                        f"weights{suffix}",
                        mutate_bytes(weights[suffix], rng),
                        load_weights_check,
                    )
                else:
                    seed = rng.choice(seeds)
                    seed_name, suffix, data = seed.name, seed.suffix, mutant(seed, rng, rng.randint(1, 4))
                path = workspace.write(data, suffix)
                finding = run_input(path, args.timeout, check)
                counts["inputs"] += 1
                if finding is None:
                    continue
                counts["findings"] += 1
                args.crashes.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha1(data).hexdigest()[:12]
                (args.crashes / f"{digest}{suffix}").write_bytes(data)
                (args.crashes / f"{digest}.txt").write_text(f"from {seed_name}\n{finding}", encoding="utf-8")
                last_line = finding.strip().splitlines()[-1][:200]
                print(
                    f"finding {digest}{suffix} (from {seed_name}): {last_line}", file=sys.stderr, flush=True
                )
    except KeyboardInterrupt:
        pass
    finally:
        workspace.close()
    elapsed = time.monotonic() - started
    print(
        f"{counts['inputs']} inputs in {elapsed:.0f} s ({counts['inputs'] / elapsed:.1f}/s), "
        f"{counts['findings']} findings"
    )
    return 1 if counts["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
