"""Checks the bar starts `engine preprocess` writes against music21's measures.

    python3 benches/peers/bar_starts_check.py CORPUS_DIR OUT/songs.jsonl [--limit N]

For each kept song of songs.jsonl (its `file` relative to CORPUS_DIR), music21 (the reference
uses 10.5.1) parses the kern file; the offsets of its measures that hold a note or rest, on the
sixteenth grid, before the song's end, are the bar starts (a pickup measure, which music21 numbers
0 and which starts at 0, counts only when the kern file has a barline before it). They must equal
`bar_starts`. Prints the count that agree and each difference; exit status 1 on any difference.
"""

import json
import sys
from fractions import Fraction

import music21


def music21_bar_starts(path):
    score = music21.converter.parse(path)
    part = score.parts[0]
    total = Fraction(part.flatten().notesAndRests.stream().highestTime) * 4
    starts = []
    for measure in part.getElementsByClass(music21.stream.Measure):
        start = Fraction(measure.offset) * 4
        if not measure.notesAndRests or start >= total:
            continue
        # music21 makes a measure of a pickup too; the kern file has no barline before it.
        if measure.number == 0 and start == 0:
            continue
        starts.append(int(start))
    return sorted(set(starts))


def main():
    corpus, songs = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    checked = agree = 0
    for line in open(songs):
        record = json.loads(line)
        if not record["kept"] or record.get("meter_changes"):
            continue
        theirs = music21_bar_starts(f"{corpus}/{record['file']}")
        checked += 1
        if theirs == record["bar_starts"]:
            agree += 1
        else:
            print(f"{record['file']}: music21 {theirs[:8]}… ours {record['bar_starts'][:8]}…")
        if limit and checked >= limit:
            break
    print(f"{agree} of {checked} songs' bar starts agree with music21")
    sys.exit(0 if agree == checked else 1)


main()
