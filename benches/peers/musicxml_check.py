"""Reads a MusicXML score with music21 and checks it against the melody it was written from.

    python3 benches/peers/musicxml_check.py FILE.musicxml SYMBOLS.txt

SYMBOLS.txt holds the melody as `engine generate` prints it: MIDI numbers, `_` (hold) and `r`
(rest) on the sixteenth-note grid. music21 (the reference uses 10.5.1) parses the score; its
notes with ties merged, and its rests with adjacent rests merged, give the symbols back, which
must equal the printed ones. Exit status 0 when they do, 1 with the first difference otherwise.
"""

import sys
from fractions import Fraction

import music21


def symbols_of(path):
    """The score's first part as our symbols: each note or rest is its onset then holds."""
    score = music21.converter.parse(path, format="musicxml")
    part = score.parts[0].stripTies()
    symbols = []
    resting = False
    for element in part.flatten().notesAndRests:
        steps = Fraction(element.duration.quarterLength) * 4
        if steps.denominator != 1:
            raise ValueError(f"{element} lasts {steps} sixteenths, off the grid")
        if element.isRest:
            onset = "_" if resting else "r"
            resting = True
        else:
            onset = str(element.pitch.midi)
            resting = False
        symbols += [onset] + ["_"] * (int(steps) - 1)
    return symbols, score


def main():
    xml_path, symbols_path = sys.argv[1:3]
    expected = open(symbols_path).read().split()
    got, score = symbols_of(xml_path)
    key = score.parts[0].recurse().getElementsByClass(music21.key.KeySignature).first()
    meter = score.parts[0].recurse().getElementsByClass(music21.meter.TimeSignature).first()
    measures = len(score.parts[0].getElementsByClass(music21.stream.Measure))
    print(f"music21 {music21.__version__}: {xml_path}: {key}, {meter.ratioString}, "
          f"{measures} measures, {len(got)} steps")
    if got != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
            min(len(got), len(expected)),
        )
        print(f"MISMATCH at step {first}: music21 reads {got[first:first + 8]}, "
              f"the melody has {expected[first:first + 8]} "
              f"({len(got)} vs {len(expected)} steps)")
        sys.exit(1)
    print("same pitches and durations as the printed melody")


if __name__ == "__main__":
    main()
