"""Cross-check a melody-engine checkpoint in PyTorch.

Loads our safetensors checkpoint into the equivalent nn.LSTM + nn.Linear module (the tensor names
are the state_dict keys; layer 0 reads the checkpoint's `input_width` columns, the sum of the
one-hots of each step's `inputs_per_step` indices) and either

- runs the evaluate protocol of `engine evaluate --json` on a split of DIR (`--split all|train|val`,
  `--val-fraction`, as there): for every window of `window` (64) consecutive steps of the split's
  stream, window start 0 .. len-window-1, predict the symbol after the window from a zero state;
  report mean cross-entropy, accuracy and perplexity, the baseline's accuracy and the same figures
  per kind of target, as JSON {"windows", "loss", "accuracy", "perplexity", "baseline_accuracy",
  "excluding_delimiter_runs", "events", "holds", "song_ends", "delimiter_runs"};

    python3 benches/peers/torch_check.py --model out/model.safetensors --data out/data [--split val]

  DIR holds dataset.txt (space-separated symbols), vocab.json (an object symbol -> id) and, for a
  model trained with `--features`, songs.jsonl: each step's K input indices are computed here from
  the songs' meters, barlines and modes as src/features.rs documents them, independently of it;

- or takes one batch, JSON {"inputs": [T][B][K] indices, "targets": [T][B] symbol ids,
  "objective": "all" | "last"}, and reports in float64, without dropout, the mean cross-entropy
  over the loss positions and its gradient for every tensor (flat, in the tensor's row-major
  order) as JSON {"loss", "count", "grads": {name: [...]}} (tests/gradients.rs compares them with
  the CPU engine's):

    python3 benches/peers/torch_check.py --model m.safetensors --gradients batch.json
"""

import argparse
import json
import math
import random
import struct
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn

from torch_cpu_step import Melody


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (format: u64 header length, JSON header, data)."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name}: dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        values = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        tensors[name] = values.reshape(info["shape"])
    return tensors, metadata


def load_model(path: Path) -> tuple[Melody, dict, list[str]]:
    """The checkpoint as a Melody module in eval mode, with its config and vocabulary."""
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["config"])
    vocab = json.loads(metadata["vocab"])
    # Checkpoints written before multi-hot inputs read one symbol per step.
    width = config.get("input_width", config["vocab_size"])
    model = Melody(config["vocab_size"], config["hidden"], config["layers"], config["dropout"], width)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, config, vocab


def batch_gradients(model: Melody, batch: dict) -> dict:
    """Mean cross-entropy at the batch's loss positions and its gradient, in float64."""
    model = model.double()
    inputs = torch.tensor(batch["inputs"])  # [T, B, K]
    targets = torch.tensor(batch["targets"])  # [T, B]
    logits = model(inputs)
    if batch["objective"] == "last":
        logits, targets = logits[-1:], targets[-1:]
    loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab), targets.reshape(-1))
    loss.backward()
    grads = {name: p.grad.reshape(-1).tolist() for name, p in model.named_parameters()}
    return {"loss": loss.item(), "count": targets.numel(), "grads": grads}


DELIMITER, HOLD = "/", "_"
# The grid the bars are counted on, in quarter lengths: the sixteenth (features::grid_step).
GRID = Fraction(1, 4)
# The meter of a song that gives none: its bars are 4/4, its meter class none.
DEFAULT_METER = (4, 4)
MAX_POSITION = 32
# Bars from the first with a row of their own; later ones share the row after them.
MAX_BAR = 16
# The groups with symbols some bars back: how many bars back each reads. Each lag takes a block of
# V + 1 rows (the symbol there, or none), then each a block of 2 (the input repeats the symbol
# that many bars before it: no, yes). n bars back is one bar back, n times, each by the measure
# in force where it stands, so a meter change is honoured.
BARS_BACK = {"lookback": (1, 2), "phrase": (4,)}
# Blocks after the symbol's, in this order; a group the model does not read takes none.
GROUP_ORDER = ("lookback", "position", "mode", "meter", "phrase", "bar", "accidentals")
# The pitch classes off C major / A minor, which every song is transposed to: a block of 3 rows
# each (not yet in the song, within the RECENT_BARS bars before the next step, only earlier),
# then one of 3 for the song (it has such a pitch anywhere: no, yes; none after the last song).
OFF_SCALE = (1, 3, 6, 8, 10)
RECENT_BARS = 4
MODE_CLASSES = {
    **dict.fromkeys(("major", "ionian", "lydian", "mixolydian"), 0),
    **dict.fromkeys(("minor", "aeolian", "dorian", "phrygian", "locrian"), 1),
}


def parse_meter(text: str) -> tuple[int, int]:
    """`3/4` -> (3, 4): the count 1 .. 255, the unit a power of two up to 64."""
    count, _, unit = text.partition("/")
    count, unit = int(count), int(unit)
    if not (1 <= count <= 255 and 1 <= unit <= 64 and unit & (unit - 1) == 0):
        raise ValueError(f"meter {text!r}")
    return count, unit


def measure_steps(meter: tuple[int, int]) -> int:
    """A bar of `meter` in grid steps: 3/4 -> 12."""
    steps = Fraction(4 * meter[0], meter[1]) / GRID
    if steps.denominator != 1:
        raise ValueError(f"meter {meter[0]}/{meter[1]} is not whole grid steps")
    return int(steps)


def meter_class(meter: tuple[int, int]) -> int:
    """Duple 0 (2, 4 beats), triple 1, compound duple 2 (6, 12), compound triple 3 (9), other 4."""
    return {2: 0, 4: 0, 3: 1, 6: 2, 12: 2, 9: 3}.get(meter[0], 4)


@dataclass
class Song:
    """One kept song's line of songs.jsonl: its bars on the grid, its mode and meter classes."""

    measures: list[tuple[int, int]]  # (first step, measure in steps) of each meter in force
    starts: list[int]  # bar starts; beyond them every measure, before the first counted back
    mode: int | None
    meter: int | None
    leaves_scale: bool

    @staticmethod
    def of(record: dict, length: int) -> "Song":
        meter = parse_meter(record["meter"]) if record.get("meter") is not None else None
        measures = [(0, measure_steps(meter or DEFAULT_METER))]
        for at, changed in record.get("meter_changes") or []:
            measures.append((at, measure_steps(parse_meter(changed))))
        starts = record.get("bar_starts")
        starts = [0] if starts is None else starts
        if any(a >= b for a, b in zip(starts, starts[1:])) or any(s >= length for s in starts):
            raise ValueError(f"bar starts {starts} are not ascending steps of {length}")
        if any(a[0] > b[0] for a, b in zip(measures, measures[1:])):
            raise ValueError("meter changes out of order")
        mode = record.get("mode")
        if mode is not None and mode not in MODE_CLASSES:
            raise ValueError(f"mode {mode!r}")
        return Song(
            measures,
            starts,
            None if mode is None else MODE_CLASSES[mode],
            None if meter is None else meter_class(meter),
            any(off_scale_class(s) is not None for s in record["encoding"].split(" ")),
        )

    def measure_at(self, step: int) -> int:
        # Of meters declared at the same step, the last holds.
        later = bisect_right([first for first, _ in self.measures], step)
        return self.measures[max(later - 1, 0)][1]

    def position(self, step: int) -> int:
        later = bisect_right(self.starts, step)
        anchor = self.starts[later - 1] if later else (self.starts[0] if self.starts else 0)
        return (step - anchor) % self.measure_at(step)

    def bar_number(self, step: int) -> int | None:
        """Bar 0 from the first bar start on; None in a pickup. Bars before a first barline that
        lies a measure or more in are counted back from it, as positions are."""
        measure = self.measure_at(0)
        written = self.starts[0] if self.starts else 0
        counted_back = written // measure
        first = written - counted_back * measure
        later = bisect_right(self.starts, step)
        if later == 0:
            return None if step < first else (step - first) // measure
        last = self.starts[later - 1]
        return counted_back + later - 1 + (step - last) // self.measure_at(step)

    def bars_before(self, step: int, bars: int) -> int | None:
        for _ in range(bars):
            step -= self.measure_at(step)
            if step < 0:
                return None
        return step


@dataclass
class Step:
    """What a step's input says besides its symbol; the defaults are a `/` run's."""

    back: dict[int, int | None]  # bars back -> the symbol there, before the next step
    repeats: dict[int, bool]  # bars back -> the input repeats the symbol there
    position: int | None = None  # of the next step in its bar
    bar: int | None = None  # of the next step in the song
    mode: int | None = None
    meter: int | None = None
    # Per pitch class of OFF_SCALE: 0 not yet heard, 1 recently, 2 only earlier.
    heard: tuple[int, ...] = (0,) * len(OFF_SCALE)
    leaves_scale: bool | None = None


LAGS = sorted({lag for lags in BARS_BACK.values() for lag in lags})


def note_step(song: Song, melody: list[int], onsets: list[int | None]) -> Step:
    """The step whose input is the last symbol of `melody`; it predicts the next. `onsets` holds
    the latest step of `melody` where each pitch class of OFF_SCALE began, or None."""
    now, after = len(melody) - 1, len(melody)
    back, repeats = {}, {}
    for lag in LAGS:
        then = song.bars_before(after, lag)
        back[lag] = None if then is None else melody[then]
        before_now = song.bars_before(now, lag)
        repeats[lag] = before_now is not None and melody[before_now] == melody[now]
    recent_from = song.bars_before(after, RECENT_BARS) or 0
    heard = tuple(0 if at is None else 1 if at >= recent_from else 2 for at in onsets)
    return Step(
        back,
        repeats,
        song.position(after),
        song.bar_number(after),
        song.mode,
        song.meter,
        heard,
        song.leaves_scale,
    )


def run_step(next_song: Song | None) -> Step:
    """A `/` of the run before `next_song`: its mode and meter, every other group's none."""
    step = Step({lag: None for lag in LAGS}, {lag: False for lag in LAGS})
    if next_song is not None:
        step.mode, step.meter = next_song.mode, next_song.meter
        step.leaves_scale = next_song.leaves_scale
    return step


def capped(value: int | None, most: int) -> int:
    """The row of a counted value: itself up to `most`, then `most` (later), then none."""
    return most + 1 if value is None else min(value, most)


def input_blocks(groups: list[str], vocab: int) -> list[tuple[int, object]]:
    """Each block of the input rows in order, as (rows, (symbol, step) -> the row within it)."""
    blocks = [(vocab, lambda symbol, step: symbol)]
    for group in GROUP_ORDER:
        if group not in groups:
            continue
        if group in BARS_BACK:
            for lag in BARS_BACK[group]:
                symbol_back = lambda _, s, lag=lag: vocab if s.back[lag] is None else s.back[lag]
                blocks.append((vocab + 1, symbol_back))
            for lag in BARS_BACK[group]:
                blocks.append((2, lambda _, s, lag=lag: int(s.repeats[lag])))
        elif group == "position":
            # 0 .. 31, then overflow, then none; and the downbeat flag.
            blocks.append((MAX_POSITION + 2, lambda _, s: capped(s.position, MAX_POSITION)))
            blocks.append((2, lambda _, s: int(s.position == 0)))
        elif group == "mode":
            blocks.append((3, lambda _, s: 2 if s.mode is None else s.mode))
        elif group == "meter":
            blocks.append((6, lambda _, s: 5 if s.meter is None else s.meter))
        elif group == "bar":
            # 0 .. 15, then later, then none (a pickup, a `/` run).
            blocks.append((MAX_BAR + 2, lambda _, s: capped(s.bar, MAX_BAR)))
        elif group == "accidentals":
            for i in range(len(OFF_SCALE)):
                blocks.append((3, lambda _, s, i=i: s.heard[i]))
            blocks.append((3, lambda _, s: 2 if s.leaves_scale is None else int(s.leaves_scale)))
    return blocks


def stream_units(stream: list[int], delimiter: int) -> list[list[int]]:
    """The songs of a stream, each with the run of `/` after it."""
    units, first = [], 0
    while first < len(stream):
        notes = first
        while notes < len(stream) and stream[notes] != delimiter:
            notes += 1
        end = notes
        while end < len(stream) and stream[end] == delimiter:
            end += 1
        units.append(stream[first:end])
        first = end
    return units


def load_songs(
    path: Path, units: list[list[int]], symbols: list[str], delimiter: int
) -> list[Song]:
    """The kept songs of songs.jsonl, each checked against its song of the stream."""
    songs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        record = json.loads(line)
        if record.get("kept") is not True:
            continue
        if len(songs) == len(units):
            raise SystemExit(f"{path} line {number}: more kept songs than dataset.txt holds")
        unit = units[len(songs)]
        notes = [symbols[s] for s in unit if s != delimiter]
        if record["encoding"].split(" ") != notes:
            raise SystemExit(f"{path} line {number}: not song {len(songs) + 1} of dataset.txt")
        try:
            songs.append(Song.of(record, len(notes)))
        except ValueError as e:
            raise SystemExit(f"{path} line {number}: {e}")
    if len(songs) != len(units):
        raise SystemExit(f"{path}: {len(songs)} kept songs, dataset.txt {len(units)}")
    return songs


def held_out(song: int, fraction: float) -> bool:
    """Song i is held out when floor((i+1)f) > floor(i f) (dataset::is_held_out)."""
    return math.floor((song + 1) * fraction) > math.floor(song * fraction)


def off_scale_class(symbol: str) -> int | None:
    """Which pitch class of OFF_SCALE a symbol sounds: its index there, None for any other."""
    if not symbol.isdigit():
        return None
    return OFF_SCALE.index(int(symbol) % 12) if int(symbol) % 12 in OFF_SCALE else None


def split_rows(
    blocks: list,
    units: list[list[int]],
    songs: list[Song] | None,
    symbols: list[str],
    delimiter: int,
) -> list[list[int]]:
    """The K input indices of every step of a split's stream, its songs and their `/` runs."""
    offsets = [sum(rows for rows, _ in blocks[:i]) for i in range(len(blocks))]
    lay_out = lambda symbol, step: [o + at(symbol, step) for o, (_, at) in zip(offsets, blocks)]
    rows = []
    for i, unit in enumerate(units):
        if songs is None:
            rows.extend([symbol] for symbol in unit)
            continue
        notes = unit.index(delimiter) if delimiter in unit else len(unit)
        onsets = [None] * len(OFF_SCALE)
        for t in range(notes):
            if (pitch_class := off_scale_class(symbols[unit[t]])) is not None:
                onsets[pitch_class] = t
            rows.append(lay_out(unit[t], note_step(songs[i], unit[: t + 1], onsets)))
        run = run_step(songs[i + 1] if i + 1 < len(units) else None)
        rows.extend(lay_out(symbol, run) for symbol in unit[notes:])
    return rows


def tally_json(count: int, loss_sum: float, correct: int) -> dict:
    """engine evaluate's figures over a set of targets."""
    loss = loss_sum / max(count, 1)
    return {
        "windows": count,
        "loss": loss,
        "accuracy": correct / max(count, 1),
        "perplexity": math.exp(loss),
    }


def evaluate(
    model: Melody,
    rows: torch.Tensor,
    symbols: torch.Tensor,
    starts: list[int],
    window: int,
    batch: int,
    hold: int,
    delimiter: int,
) -> dict:
    """The evaluate protocol's report on the windows at `starts` of a stream of `rows` [N, K]."""
    # Per kind of target, as evaluate::TargetKind: [count, loss sum, correct].
    kinds = {kind: [0, 0.0, 0] for kind in ("events", "holds", "song_ends", "delimiter_runs")}
    baseline_correct = 0
    offsets = torch.arange(window)
    with torch.no_grad():
        for first in range(0, len(starts), batch):
            batch_starts = torch.tensor(starts[first : first + batch])
            inputs = rows[batch_starts[None, :] + offsets[:, None]]  # [T, B, K]
            targets = symbols[batch_starts + window]
            previous = symbols[batch_starts + window - 1]
            logits = model(inputs)[-1]  # the step after the window
            losses = nn.functional.cross_entropy(logits, targets, reduction="none")
            right = logits.argmax(dim=1) == targets
            after_delimiter = previous == delimiter
            kind_of = {
                "holds": targets == hold,
                "delimiter_runs": after_delimiter & (targets == delimiter),
                "song_ends": ~after_delimiter & (targets == delimiter),
            }
            not_events = kind_of["holds"] | kind_of["delimiter_runs"] | kind_of["song_ends"]
            kind_of["events"] = ~not_events
            for kind, mask in kind_of.items():
                kinds[kind][0] += int(mask.sum())
                kinds[kind][1] += losses[mask].double().sum().item()
                kinds[kind][2] += int(right[mask].sum())
            baseline = torch.where(after_delimiter, delimiter, hold)
            baseline_correct += int((baseline == targets).sum())
    total = lambda names: tally_json(*(sum(kinds[n][i] for n in names) for i in range(3)))
    report = total(kinds)
    report["baseline_accuracy"] = baseline_correct / max(len(starts), 1)
    report["excluding_delimiter_runs"] = total(("events", "holds", "song_ends"))
    report.update({kind: tally_json(*kinds[kind]) for kind in kinds})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint .safetensors")
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--data", type=Path, help="dir with dataset.txt, vocab.json, songs.jsonl")
    task.add_argument("--gradients", type=Path, help="one batch (JSON) to take the gradient of")
    parser.add_argument("--split", choices=("all", "train", "val"), default="all")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-windows", type=int, help="evaluate a fixed-seed sample of windows")
    # 128 windows, as the engine's: a [T][B][K][D] one-hot a batch must fit in memory.
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, config, checkpoint_vocab = load_model(args.model)
    if args.gradients is not None:
        print(json.dumps(batch_gradients(model, json.loads(args.gradients.read_text()))))
        return
    vocab = json.loads((args.data / "vocab.json").read_text())
    symbols = [s for s, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if symbols != checkpoint_vocab:
        raise SystemExit(f"{args.data / 'vocab.json'} differs from the vocabulary in {args.model}")
    groups = (config.get("features") or {}).get("groups", [])
    if unknown := [g for g in groups if g not in GROUP_ORDER]:
        raise SystemExit(f"{args.model}: feature groups {unknown} unknown here")
    blocks = input_blocks(groups, len(vocab))
    width = sum(rows for rows, _ in blocks)
    read = (config.get("input_width", len(vocab)), config.get("inputs_per_step", 1))
    if read != (width, len(blocks)):
        raise SystemExit(
            f"{args.model} reads {read[1]} indices of {read[0]} columns a step, but its feature "
            f"groups {groups} lay out {len(blocks)} of {width}"
        )

    delimiter, hold = vocab[DELIMITER], vocab[HOLD]
    stream = [vocab[s] for s in (args.data / "dataset.txt").read_text().split()]
    units = stream_units(stream, delimiter)
    songs = load_songs(args.data / "songs.jsonl", units, symbols, delimiter) if groups else None
    if args.split != "all":
        want_val = args.split == "val"
        kept = [i for i in range(len(units)) if held_out(i, args.val_fraction) == want_val]
        units = [units[i] for i in kept]
        if songs is not None:
            songs = [songs[i] for i in kept]
    rows = torch.tensor(split_rows(blocks, units, songs, symbols, delimiter))
    split_symbols = torch.tensor([s for unit in units for s in unit])

    window = config["window"]
    starts = list(range(len(split_symbols) - window))
    if args.max_windows is not None and args.max_windows < len(starts):
        starts = sorted(random.Random(0).sample(starts, args.max_windows))
    report = evaluate(model, rows, split_symbols, starts, window, args.batch, hold, delimiter)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
