//! Symbols → a one-part MusicXML 4.0 (partwise) score that MuseScore, music21 and Finale open:
//! key, meter, measures, notes split at barlines and into single note values with ties, rests.

use std::collections::HashMap;

use super::notation::{
    key_fifths, measure_steps, note_value, pieces, signature_alter, spell, NOTE_VALUES,
};
use crate::kern::KeyDesignation;
use crate::melody::spans;

/// Divisions per quarter note: one per sixteenth step, the grid our symbols live on.
const DIVISIONS: u32 = 4;

/// The MusicXML note type and dots of each of [`NOTE_VALUES`] (lengths in sixteenth steps).
const NOTE_TYPES: [(&str, bool); NOTE_VALUES.len()] = [
    ("whole", false),
    ("half", true),
    ("half", false),
    ("quarter", true),
    ("quarter", false),
    ("eighth", true),
    ("eighth", false),
    ("16th", false),
];

/// Writes the first melody of `symbols` (up to the first `/`) as MusicXML, titled `title`.
///
/// One part, "Melody", on a treble staff, played by General MIDI `program` (0 = piano). The first measure carries the attributes (divisions
/// 4, the key's signature and mode, the meter); the melody starts on the downbeat and its last
/// measure, which ends with a final barline, may be incomplete. As in `**kern`
/// ([`super::kern::write_kern`]), a note crossing a barline or lasting no single note value is
/// written as tied pieces, longest first, and rests are split the same way. Pitches are spelled
/// in the key; a note shows an accidental where the key signature and the accidentals before it
/// in its measure do not already give its alteration (the piece after a tie never does).
///
/// Errors on unreadable symbols, an empty melody, or a meter whose measure is not a whole
/// number of sixteenths.
pub fn write_musicxml<S: AsRef<str>>(
    symbols: &[S],
    meter: (u32, u32),
    key: KeyDesignation,
    title: &str,
    program: u8,
) -> Result<String, String> {
    let measure = measure_steps(meter)?;
    let spans = spans(symbols)?;
    if spans.is_empty() {
        return Err("no notes or rests to write".into());
    }
    let fifths = key_fifths(key);
    let mode = if key.mode.is_minor() {
        "minor"
    } else {
        "major"
    };
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
         <!DOCTYPE score-partwise PUBLIC \"-//Recordare//DTD MusicXML 4.0 Partwise//EN\" \
         \"http://www.musicxml.org/dtds/partwise.dtd\">\n\
         <score-partwise version=\"4.0\">\n\
         \x20 <work>\n    <work-title>{}</work-title>\n  </work>\n\
         \x20 <part-list>\n    <score-part id=\"P1\">\n      <part-name>Melody</part-name>\n      \
         <score-instrument id=\"P1-I1\">\n        <instrument-name>Melody</instrument-name>\n      \
         </score-instrument>\n      \
         <midi-instrument id=\"P1-I1\">\n        <midi-channel>1</midi-channel>\n        \
         <midi-program>{}</midi-program>\n      </midi-instrument>\n    \
         </score-part>\n  </part-list>\n\
         \x20 <part id=\"P1\">\n\
         \x20   <measure number=\"1\">\n\
         \x20     <attributes>\n\
         \x20       <divisions>{DIVISIONS}</divisions>\n\
         \x20       <key>\n          <fifths>{fifths}</fifths>\n          <mode>{mode}</mode>\n        \
         </key>\n\
         \x20       <time>\n          <beats>{}</beats>\n          <beat-type>{}</beat-type>\n        \
         </time>\n\
         \x20       <clef>\n          <sign>G</sign>\n          <line>2</line>\n        </clef>\n\
         \x20     </attributes>\n",
        escape(title),
        // MusicXML numbers programs from 1.
        program as u32 + 1,
        meter.0,
        meter.1,
    );

    // The alteration in force for each (letter, octave) of the current measure, set by the
    // accidentals written in it.
    let mut in_force: HashMap<(char, i32), i32> = HashMap::new();
    let mut position = 0; // steps from the start
    for span in &spans {
        let pitch = span.pitch.map(|midi| spell(midi, fifths));
        let pieces = pieces(span, position, measure);
        for (i, &steps) in pieces.iter().enumerate() {
            if position > 0 && position % measure == 0 {
                in_force.clear();
                xml += &format!(
                    "    </measure>\n    <measure number=\"{}\">\n",
                    position / measure + 1
                );
            }
            let (kind, dotted) = NOTE_TYPES[note_value(steps)];
            let duration = steps * DIVISIONS / 4;
            let dot = if dotted { "\n        <dot/>" } else { "" };
            xml += &match pitch {
                None => format!(
                    "      <note>\n        <rest/>\n        <duration>{duration}</duration>\n        \
                     <voice>1</voice>\n        <type>{kind}</type>{dot}\n      </note>\n"
                ),
                Some(spelling) => {
                    let (ties, tied) = ties(i, pieces.len());
                    let alter = match spelling.alter {
                        0 => String::new(),
                        alter => format!("\n          <alter>{alter}</alter>"),
                    };
                    let shown = in_force
                        .get(&(spelling.letter, spelling.octave))
                        .copied()
                        .unwrap_or_else(|| signature_alter(spelling.letter, fifths));
                    let accidental = match accidental(spelling.alter) {
                        Some(name) if i == 0 && shown != spelling.alter => {
                            in_force.insert((spelling.letter, spelling.octave), spelling.alter);
                            format!("\n        <accidental>{name}</accidental>")
                        }
                        _ => String::new(),
                    };
                    format!(
                        "      <note>\n        <pitch>\n          <step>{}</step>{alter}\n          \
                         <octave>{}</octave>\n        </pitch>\n        \
                         <duration>{duration}</duration>{ties}\n        <voice>1</voice>\n        \
                         <type>{kind}</type>{dot}{accidental}{tied}\n      </note>\n",
                        spelling.letter, spelling.octave,
                    )
                }
            };
            position += steps;
        }
    }
    xml += "      <barline location=\"right\">\n        <bar-style>light-heavy</bar-style>\n      \
            </barline>\n    </measure>\n  </part>\n</score-partwise>\n";
    Ok(xml)
}

/// The `<tie>` elements and the `<notations>` with `<tied>` of piece `i` of a note written as
/// `count` tied pieces: a stop from the one before, a start to the one after.
fn ties(i: usize, count: usize) -> (String, String) {
    let types: Vec<&str> = [(i > 0, "stop"), (i + 1 < count, "start")]
        .into_iter()
        .filter_map(|(present, kind)| present.then_some(kind))
        .collect();
    if types.is_empty() {
        return (String::new(), String::new());
    }
    let tie = types
        .iter()
        .map(|kind| format!("\n        <tie type=\"{kind}\"/>"))
        .collect();
    let tied: String = types
        .iter()
        .map(|kind| format!("\n          <tied type=\"{kind}\"/>"))
        .collect();
    (
        tie,
        format!("\n        <notations>{tied}\n        </notations>"),
    )
}

/// The `<accidental>` value of an alteration; beyond three semitones (keys such as `C####`)
/// there is none, and the `<alter>` alone says the pitch.
fn accidental(alter: i32) -> Option<&'static str> {
    Some(match alter {
        -3 => "triple-flat",
        -2 => "flat-flat",
        -1 => "flat",
        0 => "natural",
        1 => "sharp",
        2 => "double-sharp",
        3 => "triple-sharp",
        _ => return None,
    })
}

/// Text as XML character data: `&`, `<`, `>` and quotes escaped, control characters (which
/// XML 1.0 forbids) replaced by spaces.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}
